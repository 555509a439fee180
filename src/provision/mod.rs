//! The test users of a deployed pool: `otp-harness users create|list|delete` and `run --provision` /
//! `--cleanup`. Creation is idempotent (a user that exists is fine), paced below Cognito's UserCreation
//! quota and resumed after throttling with back-off, so a user is never lost nor made twice; every
//! user it makes carries a marker (`marker`), and deletion refuses any user without it.

pub mod marker;
mod progress;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_cognitoidentityprovider::types::{AttributeType, MessageActionType};
use futures::StreamExt;
use parking_lot::Mutex;

use crate::admin::AdminClients;
use crate::cognito::{CallError, ErrorClass};
use crate::scenario::Scenario;
pub use marker::Marker;
pub use progress::Progress;

/// Why test users could not be handled at all.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(
        "the pool has no {attribute} attribute and {address} has no \"{tag}\" tag, so a user made from it could \
         not be told apart from a real one later; declare a String custom attribute named otp_harness in the \
         pool's schema, or use a pattern such as \"loadtest+{tag}-{{n}}@your-test-domain\""
    )]
    Unmarkable { address: String, attribute: &'static str, tag: &'static str },
    #[error("reading the pool's schema (DescribeUserPool): {0}")]
    Describe(CallError),
    #[error("listing users (ListUsers): {0}")]
    List(CallError),
}

/// How fast and how wide `create` goes.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// AdminCreateUser calls per second (Cognito's UserCreation quota: 50/s, shared by the account's
    /// pools in the region).
    pub rate: f64,
    /// Calls in flight.
    pub concurrency: usize,
    /// Give up on a user after this many throttled attempts in a row.
    pub max_throttled_attempts: u32,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self { rate: 10.0, concurrency: 4, max_throttled_attempts: 12 }
    }
}

/// What `create` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOutcome {
    pub created: u32,
    /// Existed already, with the marker.
    pub existed: u32,
    /// Existed already without the marker: left alone (and `delete` will not touch them).
    pub existed_unmarked: Vec<String>,
    /// Throttled answers that were waited out.
    pub throttled: u32,
    /// Addresses that could not be created, with why.
    pub failed: Vec<(String, String)>,
}

/// What `delete` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub deleted: u32,
    /// Not in the pool.
    pub absent: u32,
    /// In the pool without the marker: not deleted.
    pub refused: Vec<String>,
    pub throttled: u32,
    pub failed: Vec<(String, String)>,
}

/// A test user as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUser {
    pub address: String,
    pub status: String,
    pub enabled: bool,
    pub marked: bool,
}

/// One line on what `create` did.
pub fn summarize_create(o: &CreateOutcome) -> String {
    let mut line = format!(
        "users create: {} created, {} existed, {} throttled answers waited out",
        o.created, o.existed, o.throttled
    );
    if !o.existed_unmarked.is_empty() {
        line.push_str(&format!(
            "; {} existed without the otp-harness marker and were left alone (first: {})",
            o.existed_unmarked.len(),
            o.existed_unmarked[0]
        ));
    }
    if let Some((address, why)) = o.failed.first() {
        line.push_str(&format!("; {} failed (first: {address}: {why})", o.failed.len()));
    }
    line
}

/// One line on what `delete` did.
pub fn summarize_delete(o: &DeleteOutcome) -> String {
    let mut line = format!("users delete: {} deleted, {} not in the pool", o.deleted, o.absent);
    if !o.refused.is_empty() {
        line.push_str(&format!(
            "; refused {} without the otp-harness marker (never deleted; first: {})",
            o.refused.len(),
            o.refused[0]
        ));
    }
    if let Some((address, why)) = o.failed.first() {
        line.push_str(&format!("; {} failed (first: {address}: {why})", o.failed.len()));
    }
    line
}

/// The scenario's test-user addresses, in order.
pub fn addresses(scenario: &Scenario) -> Vec<String> {
    (0..scenario.users.count).map(|i| scenario.users.address(i)).collect()
}

/// The marker this pool allows: the attribute if its schema declares it. A caller that may not
/// describe the pool gets the address-tag rule, which needs no permission to check.
pub async fn pool_marker(clients: &AdminClients) -> Result<Marker, ProvisionError> {
    let described = clients.cognito.describe_user_pool().user_pool_id(&clients.target.user_pool_id).send().await;
    match described {
        Ok(out) => {
            let names = out.user_pool().map(|p| p.schema_attributes()).unwrap_or_default();
            Ok(Marker::for_schema(names.iter().filter_map(|a| a.name())))
        }
        Err(e) => {
            let error = CallError::from_sdk(e);
            if error.type_name == "AccessDeniedException" {
                tracing::warn!("DescribeUserPool refused (AccessDenied): using the address-tag marker");
                Ok(Marker::AddressTag)
            } else {
                Err(ProvisionError::Describe(error))
            }
        }
    }
}

/// Creates the scenario's test users that do not exist yet.
pub async fn create(
    clients: &AdminClients,
    scenario: &Scenario,
    options: &CreateOptions,
    progress: &Progress,
) -> Result<CreateOutcome, ProvisionError> {
    let marker = pool_marker(clients).await?;
    let addresses = addresses(scenario);
    if marker == Marker::AddressTag
        && let Some(untagged) = addresses.iter().find(|a| !marker::has_address_tag(a))
    {
        return Err(ProvisionError::Unmarkable {
            address: untagged.clone(),
            attribute: marker::MARKER_ATTRIBUTE,
            tag: marker::ADDRESS_TAG,
        });
    }
    progress.start("users create", addresses.len(), &marker.describe());
    let pacer = Pacer::new(options.rate);
    let outcome = Mutex::new(CreateOutcome::default());
    futures::stream::iter(addresses)
        .for_each_concurrent(options.concurrency.max(1), |address| {
            let (pacer, outcome) = (&pacer, &outcome);
            async move {
                let result = create_one(clients, marker, &address, pacer, options.max_throttled_attempts).await;
                let mut outcome = outcome.lock();
                outcome.throttled += result.throttled;
                match result.done {
                    Ok(Created::New) => outcome.created += 1,
                    Ok(Created::Existed) => outcome.existed += 1,
                    Ok(Created::ExistedUnmarked) => outcome.existed_unmarked.push(address),
                    Err(reason) => outcome.failed.push((address, reason)),
                }
                progress.step(outcome.throttled);
            }
        })
        .await;
    progress.finish();
    let mut outcome = outcome.into_inner();
    outcome.existed_unmarked.sort();
    outcome.failed.sort();
    Ok(outcome)
}

enum Created {
    New,
    Existed,
    ExistedUnmarked,
}

struct Attempted<T> {
    done: Result<T, String>,
    throttled: u32,
}

async fn create_one(
    clients: &AdminClients,
    marker: Marker,
    address: &str,
    pacer: &Pacer,
    max_throttled: u32,
) -> Attempted<Created> {
    let mut attributes = vec![attribute("email", address), attribute("email_verified", "true")];
    if marker == Marker::Attribute {
        attributes.push(attribute(marker::MARKER_ATTRIBUTE, marker::MARKER_VALUE));
    }
    let mut backoff = Backoff::new(max_throttled);
    loop {
        pacer.wait().await;
        let result = clients
            .cognito
            .admin_create_user()
            .user_pool_id(&clients.target.user_pool_id)
            .username(address)
            .set_user_attributes(Some(attributes.clone()))
            .message_action(MessageActionType::Suppress)
            .send()
            .await;
        let error = match result {
            Ok(_) => return Attempted { done: Ok(Created::New), throttled: backoff.throttled },
            Err(e) => CallError::from_sdk(e),
        };
        if error.class == ErrorClass::Throttled || error.class == ErrorClass::Timeout {
            // A time-out may have created the user: the next attempt then finds it (UsernameExists).
            if backoff.wait().await {
                continue;
            }
            return Attempted { done: Err(format!("gave up after throttling: {error}")), throttled: backoff.throttled };
        }
        if error.type_name != "UsernameExistsException" && error.type_name != "AliasExistsException" {
            return Attempted { done: Err(error.to_string()), throttled: backoff.throttled };
        }
        // It exists: ours (marked) or someone else's.
        let done = match get_user(clients, address, pacer, &mut backoff).await {
            Ok(Some(found)) if marker.is_marked(address, &found) => Ok(Created::Existed),
            Ok(Some(_)) => Ok(Created::ExistedUnmarked),
            Ok(None) => Err("exists under another user with this email (alias)".to_string()),
            Err(e) => Err(e),
        };
        return Attempted { done, throttled: backoff.throttled };
    }
}

/// AdminGetUser: the user's attributes, or None if absent.
async fn get_user(
    clients: &AdminClients,
    address: &str,
    pacer: &Pacer,
    backoff: &mut Backoff,
) -> Result<Option<HashMap<String, String>>, String> {
    loop {
        pacer.wait().await;
        match clients.cognito.admin_get_user().user_pool_id(&clients.target.user_pool_id).username(address).send().await
        {
            Ok(out) => {
                let attributes = out
                    .user_attributes()
                    .iter()
                    .map(|a| (a.name().to_string(), a.value().unwrap_or_default().to_string()))
                    .collect();
                return Ok(Some(attributes));
            }
            Err(e) => {
                let error = CallError::from_sdk(e);
                match error.class {
                    ErrorClass::UserNotFound => return Ok(None),
                    ErrorClass::Throttled | ErrorClass::Timeout if backoff.wait().await => continue,
                    _ => return Err(error.to_string()),
                }
            }
        }
    }
}

/// Deletes the scenario's test users that carry the marker; refuses (and reports) any without it.
pub async fn delete(
    clients: &AdminClients,
    scenario: &Scenario,
    options: &CreateOptions,
    progress: &Progress,
) -> Result<DeleteOutcome, ProvisionError> {
    let marker = pool_marker(clients).await?;
    let addresses = addresses(scenario);
    progress.start("users delete", addresses.len(), &marker.describe());
    let pacer = Pacer::new(options.rate);
    let outcome = Mutex::new(DeleteOutcome::default());
    futures::stream::iter(addresses)
        .for_each_concurrent(options.concurrency.max(1), |address| {
            let (pacer, outcome) = (&pacer, &outcome);
            async move {
                let mut backoff = Backoff::new(options.max_throttled_attempts);
                let result = delete_one(clients, marker, &address, pacer, &mut backoff).await;
                let mut outcome = outcome.lock();
                outcome.throttled += backoff.throttled;
                match result {
                    Ok(Deleted::Done) => outcome.deleted += 1,
                    Ok(Deleted::Absent) => outcome.absent += 1,
                    Ok(Deleted::Refused) => outcome.refused.push(address),
                    Err(reason) => outcome.failed.push((address, reason)),
                }
                progress.step(outcome.throttled);
            }
        })
        .await;
    progress.finish();
    let mut outcome = outcome.into_inner();
    outcome.refused.sort();
    outcome.failed.sort();
    Ok(outcome)
}

enum Deleted {
    Done,
    Absent,
    Refused,
}

async fn delete_one(
    clients: &AdminClients,
    marker: Marker,
    address: &str,
    pacer: &Pacer,
    backoff: &mut Backoff,
) -> Result<Deleted, String> {
    let Some(attributes) = get_user(clients, address, pacer, backoff).await? else {
        return Ok(Deleted::Absent);
    };
    if !marker.is_marked(address, &attributes) {
        return Ok(Deleted::Refused);
    }
    loop {
        pacer.wait().await;
        match clients
            .cognito
            .admin_delete_user()
            .user_pool_id(&clients.target.user_pool_id)
            .username(address)
            .send()
            .await
        {
            Ok(_) => return Ok(Deleted::Done),
            Err(e) => {
                let error = CallError::from_sdk(e);
                match error.class {
                    // Deleted by an attempt whose answer was lost.
                    ErrorClass::UserNotFound => return Ok(Deleted::Done),
                    ErrorClass::Throttled | ErrorClass::Timeout if backoff.wait().await => continue,
                    _ => return Err(error.to_string()),
                }
            }
        }
    }
}

/// The scenario's test users that exist in the pool (ListUsers, paged, filtered by the pattern's
/// prefix), with their marker.
pub async fn list(clients: &AdminClients, scenario: &Scenario) -> Result<(Vec<ListedUser>, Marker), ProvisionError> {
    let marker = pool_marker(clients).await?;
    let prefix = scenario.users.pattern.split("{n}").next().unwrap_or_default().replace(['"', '\\'], "");
    let mut users = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = clients
            .cognito
            .list_users()
            .user_pool_id(&clients.target.user_pool_id)
            .filter(format!("email ^= \"{prefix}\""))
            .limit(60)
            .set_pagination_token(token.take())
            .send()
            .await
            .map_err(|e| ProvisionError::List(CallError::from_sdk(e)))?;
        for user in out.users() {
            let attributes: HashMap<String, String> = user
                .attributes()
                .iter()
                .map(|a| (a.name().to_string(), a.value().unwrap_or_default().to_string()))
                .collect();
            let address = attributes.get("email").cloned().or_else(|| user.username().map(str::to_string));
            let Some(address) = address.filter(|a| scenario.users.owns(a)) else { continue };
            users.push(ListedUser {
                marked: marker.is_marked(&address, &attributes),
                address,
                status: user.user_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                enabled: user.enabled(),
            });
        }
        match out.pagination_token().filter(|t| !t.is_empty()) {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    users.sort_by(|a, b| a.address.cmp(&b.address));
    Ok((users, marker))
}

fn attribute(name: &str, value: &str) -> AttributeType {
    // The builder fails only without a name, and every name here is one of the tool's constants.
    AttributeType::builder().name(name).value(value).build().expect("an attribute with a name")
}

/// Spaces calls evenly at `rate` per second across every task.
struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(rate: f64) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 { rate } else { 10.0 };
        Self { interval: Duration::from_secs_f64(1.0 / rate), next: Mutex::new(Instant::now()) }
    }

    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock();
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// Exponential back-off with jitter after throttling: 100 ms doubling up to 5 s, a bounded number of
/// times in a row.
struct Backoff {
    attempt: u32,
    max: u32,
    throttled: u32,
}

impl Backoff {
    fn new(max: u32) -> Self {
        Self { attempt: 0, max, throttled: 0 }
    }

    /// Waits before the next attempt; false when out of attempts.
    async fn wait(&mut self) -> bool {
        self.throttled += 1;
        if self.attempt >= self.max {
            return false;
        }
        let base = Duration::from_millis(100).saturating_mul(1 << self.attempt.min(6)).min(Duration::from_secs(5));
        let jitter = rand::random_range(0.5..1.0);
        self.attempt += 1;
        tokio::time::sleep(base.mul_f64(jitter)).await;
        true
    }
}
