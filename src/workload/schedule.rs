//! The flow mix as a schedule: one cycle of the scenario's flows by smooth weighted round-robin, so a
//! virtual user's flows follow the weights closely at every point of the run, not just on average.

use crate::scenario::FlowSpec;

/// One cycle of the flow mix by smooth weighted round-robin: each flow appears `weight` times per
/// cycle, spread out (weights 4, 1, 1 give login, login, retry, login, lockout, login).
pub fn flow_schedule(flows: &[FlowSpec]) -> Vec<FlowSpec> {
    let total: i64 = flows.iter().map(|f| i64::from(f.weight)).sum();
    let mut current: Vec<i64> = vec![0; flows.len()];
    let mut out = Vec::with_capacity(total.max(0) as usize);
    for _ in 0..total {
        for (c, f) in current.iter_mut().zip(flows) {
            *c += i64::from(f.weight);
        }
        let Some((best, _)) = current.iter().enumerate().max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i))) else {
            break;
        };
        current[best] -= total;
        out.push(flows[best].clone());
    }
    if out.is_empty() {
        out.extend(flows.first().cloned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::FlowKind;

    fn spec(kind: FlowKind, weight: u32) -> FlowSpec {
        FlowSpec { kind, weight, wrong: 1, auth: None }
    }

    #[test]
    fn the_schedule_honours_weights_and_spreads_flows() {
        let schedule = flow_schedule(&[spec(FlowKind::Login, 4), spec(FlowKind::Retry, 1), spec(FlowKind::Lockout, 1)]);
        let kinds: Vec<FlowKind> = schedule.iter().map(|f| f.kind).collect();
        use FlowKind::{Lockout as K, Login as L, Retry as R};
        assert_eq!(kinds, [L, L, R, L, K, L]);
        let only_zero = flow_schedule(&[spec(FlowKind::Login, 0)]);
        assert_eq!(only_zero.len(), 1);
    }
}
