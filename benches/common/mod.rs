//! What the criterion benches share: one measurement configuration, so their figures
//! are taken the same way.

use std::time::Duration;

use criterion::Criterion;

/// Short warm-up and measurement: these are fast loops, and `cargo bench` runs three
/// files of them.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}
