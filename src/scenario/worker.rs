//! Worker slicing (`run --worker INDEX/COUNT`): the part of a scenario one machine runs — a disjoint
//! range of the test users and its share of the load; probes on worker 0 only.

use super::{LoadModel, Scenario, ScenarioError};

/// Which slice of a run one machine takes (`run --worker INDEX/COUNT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSlice {
    pub index: u32,
    pub count: u32,
}

impl WorkerSlice {
    /// Parses `INDEX/COUNT` (0-based index), e.g. `2/8`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (index, count) = text.split_once('/').ok_or("expected INDEX/COUNT, e.g. 0/4")?;
        let index: u32 = index.trim().parse().map_err(|_| format!("{index:?} is not a worker index"))?;
        let count: u32 = count.trim().parse().map_err(|_| format!("{count:?} is not a worker count"))?;
        if count == 0 || index >= count {
            return Err(format!("worker index {index} is not below the worker count {count}"));
        }
        Ok(Self { index, count })
    }

    /// This worker's share of `total` (the first `total % count` workers take one more).
    pub fn share(self, total: u32) -> u32 {
        total / self.count + u32::from(self.index < total % self.count)
    }
}

impl Scenario {
    /// The part of this scenario one worker runs: a disjoint range of the test users, its share of the
    /// virtual users (closed) or of the rate and in-flight cap (open); probes on worker 0 only. The
    /// report folder is named `{name}-w{index}`.
    pub fn for_worker(&self, slice: WorkerSlice) -> Result<Scenario, ScenarioError> {
        let mut s = self.clone();
        let per_worker = self.users.count / slice.count;
        s.users.first = self.users.first + slice.index * per_worker;
        s.users.count = per_worker;
        if slice.index != 0 {
            s.probes.disable_all();
        }
        let divide = |rate: f64| rate / f64::from(slice.count);
        match self.load.model {
            LoadModel::Closed => s.load.users = slice.share(self.load.users).max(1),
            LoadModel::Open => {
                s.load.rate = self.load.rate.map(divide);
                s.load.start_rate = self.load.start_rate.map(divide);
                for stage in &mut s.load.stages {
                    stage.rate = divide(stage.rate);
                }
                s.load.max_in_flight = self.load.max_in_flight.div_ceil(slice.count).max(1);
            }
        }
        s.name = format!("{}-w{}", self.name, slice.index);
        let needed = s.load.virtual_users().saturating_add(s.probe_users());
        if s.users.count < needed {
            return Err(ScenarioError::new(
                &self.path,
                None,
                format!(
                    "worker {}/{} gets {} of the {} test users but needs {needed}",
                    slice.index, slice.count, s.users.count, self.users.count
                ),
                format!("raise users.count to at least {}", u64::from(needed) * u64::from(slice.count)),
            ));
        }
        Ok(s)
    }
}
