//! A throwaway S3 server: moto's `moto_server` on 127.0.0.1 with a free port. Found through
//! `OTP_HARNESS_MOTO`, the project's `.venv` (made by `.ci/run`), or `PATH`. The same process serves
//! SQS (and SNS): a bucket's event notifications to a queue (`notify_queue`) are sent in-process. Its
//! request recorder (`start_recording`, `recorded`) lets a test count the calls made to it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running S3 server; stopped on drop.
pub struct S3Server {
    child: Child,
    pub port: u16,
    /// Holds moto's request recording.
    _dir: tempfile::TempDir,
}

/// One request moto recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// The whole URL, query included.
    pub url: String,
    /// The JSON protocols' operation (`AmazonSQS.ReceiveMessage`), when the request names one.
    pub target: Option<String>,
}

impl Recorded {
    /// An S3 ListObjectsV2 call.
    pub fn is_list_objects_v2(&self) -> bool {
        self.method == "GET" && self.url.contains("list-type=2")
    }
}

impl S3Server {
    /// Starts moto and waits until it answers HTTP.
    pub async fn start() -> anyhow::Result<Self> {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
        let binary = super::find_executable("OTP_HARNESS_MOTO", "moto_server", &[venv]).context(
            "moto_server not found: run .ci/run once, or pip install \"moto[server]\" (or set OTP_HARNESS_MOTO)",
        )?;
        let port = super::free_port()?;
        let dir = tempfile::Builder::new().prefix("moto").tempdir().context("creating moto's directory")?;
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording.jsonl"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = Self { child, port, _dir: dir };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!("moto_server exited at start ({status})");
            }
            if client.get(server.endpoint()).send().await.is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("moto_server did not answer within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's process id (benchmarks read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An AWS configuration for this server: static test credentials, us-east-1, its endpoint.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "testkit"))
            .endpoint_url(self.endpoint())
            .load()
            .await
    }

    /// An S3 client for this server (path-style addressing).
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config().await).force_path_style(true).build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Creates `bucket` (if it is not there) and a standard queue `queue`, and has the bucket send its
    /// ObjectCreated events for keys under `prefix` to the queue. Returns the queue's URL.
    pub async fn notify_queue(&self, bucket: &str, prefix: &str, queue: &str) -> anyhow::Result<String> {
        let s3 = self.s3_client().await;
        let sqs = aws_sdk_sqs::Client::new(&self.sdk_config().await);
        if let Err(e) = s3.create_bucket().bucket(bucket).send().await
            && !e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you())
        {
            return Err(anyhow::Error::new(e)).with_context(|| format!("creating bucket {bucket}"));
        }
        let url = self.create_queue(queue).await?;
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .context("reading the queue's ARN")?
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
            .context("the queue has no ARN")?;
        use aws_sdk_s3::types::{
            Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
            QueueConfiguration, S3KeyFilter,
        };
        let filter = NotificationConfigurationFilter::builder()
            .key(
                S3KeyFilter::builder()
                    .filter_rules(FilterRule::builder().name(FilterRuleName::Prefix).value(prefix).build())
                    .build(),
            )
            .build();
        let configuration = QueueConfiguration::builder()
            .queue_arn(arn)
            .events(Event::from("s3:ObjectCreated:*"))
            .filter(filter)
            .build()
            .context("building the queue configuration")?;
        s3.put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(
                NotificationConfiguration::builder().queue_configurations(configuration).build(),
            )
            .send()
            .await
            .with_context(|| format!("configuring {bucket}'s notifications"))?;
        Ok(url)
    }

    /// Creates a standard queue `queue` (no notification reaches it) and returns its URL.
    pub async fn create_queue(&self, queue: &str) -> anyhow::Result<String> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk_config().await);
        let created = sqs.create_queue().queue_name(queue).send().await.context("creating the queue")?;
        created.queue_url().map(str::to_string).context("the new queue has no URL")
    }

    /// Forgets what was recorded and records every request from now on.
    pub async fn start_recording(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        for action in ["reset-recording", "start-recording"] {
            let url = format!("{}/moto-api/recorder/{action}", self.endpoint());
            let response = client.post(&url).send().await.with_context(|| format!("POST {url}"))?;
            anyhow::ensure!(response.status().is_success(), "{url} answered {}", response.status());
        }
        Ok(())
    }

    /// Every request recorded since `start_recording`, in order.
    pub async fn recorded(&self) -> anyhow::Result<Vec<Recorded>> {
        let url = format!("{}/moto-api/recorder/download-recording", self.endpoint());
        let text = reqwest::Client::new().get(&url).send().await?.error_for_status()?.text().await?;
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let entry: serde_json::Value = serde_json::from_str(line).context("a recorded request is not JSON")?;
            let target = entry["headers"]
                .as_object()
                .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target")))
                .and_then(|(_, v)| v.as_str())
                .map(str::to_string);
            out.push(Recorded {
                method: entry["method"].as_str().unwrap_or_default().to_string(),
                url: entry["url"].as_str().unwrap_or_default().to_string(),
                target,
            });
        }
        Ok(out)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        super::terminate(&mut self.child, Duration::from_secs(5));
    }
}
