//! `latency.hlog`: interval histograms in the HdrHistogram log format (1.3, V2 + DEFLATE, tagged
//! `initiate`, `login`, … and `login/initiate`, … per flow), written while the run goes. Logs from
//! several machines merge exactly (`otp-harness merge`). Values are microseconds; the `Interval_Max`
//! column is in milliseconds (max value divisor 1000).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use crate::background::CancellationToken;
use crate::metrics::Metrics;

/// The file name in a run folder.
pub const FILE: &str = "latency.hlog";

type Interval = (Duration, Duration, BTreeMap<String, Histogram<u64>>);

/// Takes the metrics' interval histograms every `interval` and appends them to the log.
pub struct HlogRecorder {
    path: PathBuf,
    ticker: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
    writer: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl HlogRecorder {
    /// Starts recording into `dir/latency.hlog`, intervals counted from `started` (wall clock
    /// `started_wall`).
    pub fn start(
        dir: &Path,
        metrics: Arc<Metrics>,
        interval: Duration,
        started: Instant,
        started_wall: SystemTime,
    ) -> anyhow::Result<Self> {
        let path = dir.join(FILE);
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let (tx, rx) = mpsc::channel::<Interval>();
        let writer = std::thread::Builder::new().name("hlog-writer".into()).spawn(move || -> anyhow::Result<()> {
            let mut out = BufWriter::new(file);
            let mut serializer = V2DeflateSerializer::new();
            let mut log = IntervalLogWriterBuilder::new()
                .add_comment("otp-harness latency log: values in microseconds, tags step or flow/step")
                .with_start_time(started_wall)
                .with_base_time(started_wall)
                .with_max_value_divisor(1000.0)
                .begin_log_with(&mut out, &mut serializer)?;
            for (start, duration, histograms) in rx {
                for (tag, histogram) in &histograms {
                    log.write_histogram(histogram, start, duration, Tag::new(tag))
                        .map_err(|e| anyhow::anyhow!("writing the hlog: {e:?}"))?;
                }
            }
            drop(log);
            std::io::Write::flush(&mut out)?;
            Ok(())
        })?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let ticker = tokio::spawn(async move {
            let mut last = started.elapsed();
            loop {
                let stopping = tokio::select! {
                    _ = stopped.cancelled() => true,
                    _ = tokio::time::sleep(interval) => false,
                };
                let now = started.elapsed();
                let histograms = metrics.take_intervals();
                if !histograms.is_empty() && tx.send((last, now.saturating_sub(last), histograms)).is_err() {
                    return;
                }
                last = now;
                if stopping {
                    return;
                }
            }
        });
        Ok(Self { path, ticker, stop, writer })
    }

    /// Writes the last interval and closes the file; returns its path.
    pub async fn finish(self) -> anyhow::Result<PathBuf> {
        // The ticker writes the last interval as it ends, so it is waited for, not aborted.
        self.stop.cancel();
        let _ = self.ticker.await;
        self.writer.join().map_err(|_| anyhow::anyhow!("the hlog writer panicked"))??;
        Ok(self.path)
    }
}

/// One interval read back from a log.
pub struct LoggedInterval {
    /// None for an untagged interval.
    pub tag: Option<String>,
    /// From the log's start.
    pub start: Duration,
    pub duration: Duration,
    pub histogram: Histogram<u64>,
}

/// Reads a log back, every interval in file order.
pub fn read(path: &Path) -> anyhow::Result<Vec<LoggedInterval>> {
    Ok(read_with_start(path)?.1)
}

/// Reads a log back with its StartTime (since the Unix epoch), if it has one.
pub fn read_with_start(path: &Path) -> anyhow::Result<(Option<Duration>, Vec<LoggedInterval>)> {
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut deserializer = Deserializer::new();
    let mut out = Vec::new();
    let mut start_time = None;
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| anyhow::anyhow!("{}: malformed hlog: {e:?}", path.display()))?;
        if let LogEntry::StartTime(t) = entry {
            start_time = Some(t);
        }
        if let LogEntry::Interval(interval) = entry {
            let encoded =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, interval.encoded_histogram())
                    .with_context(|| format!("{}: bad base64 in an interval", path.display()))?;
            let histogram: Histogram<u64> = deserializer
                .deserialize(&mut std::io::Cursor::new(encoded))
                .map_err(|e| anyhow::anyhow!("{}: bad histogram: {e:?}", path.display()))?;
            out.push(LoggedInterval {
                tag: interval.tag().map(|t| t.as_str().to_string()),
                start: interval.start_timestamp(),
                duration: interval.duration(),
                histogram,
            });
        }
    }
    Ok((start_time, out))
}

/// Writes `intervals` as a new log starting at `start_wall`.
pub fn write(path: &Path, start_wall: SystemTime, intervals: &[LoggedInterval]) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut serializer = V2DeflateSerializer::new();
    {
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment("otp-harness latency log (merged): values in microseconds, tags step or flow/step")
            .with_start_time(start_wall)
            .with_base_time(start_wall)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut out, &mut serializer)?;
        for i in intervals {
            let tag = i.tag.as_deref().and_then(Tag::new);
            log.write_histogram(&i.histogram, i.start, i.duration, tag)
                .map_err(|e| anyhow::anyhow!("writing {}: {e:?}", path.display()))?;
        }
    }
    std::io::Write::flush(&mut out)?;
    Ok(())
}
