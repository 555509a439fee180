//! The documented example pool config parses, and says what the defaults are.

use otp_harness::pool::PoolConfig;

#[test]
fn the_example_pool_config_is_valid_and_matches_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/local-pool.toml");
    let config = PoolConfig::from_file(&path).expect("example parses");
    let defaults = PoolConfig::default();
    assert_eq!(config.users.count, 10);
    let without_users = PoolConfig { users: defaults.users.clone(), ..config };
    assert_eq!(without_users, defaults, "the example documents the defaults");
}
