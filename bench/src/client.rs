//! A minimal HTTP/1.1 keep-alive client and a closed-loop load runner.
//!
//! Hand-rolled so the load generator costs as little CPU as possible (the machine is
//! shared between it and the server under test) and sends exactly the bytes we choose.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    host: String,
}

pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Conn {
    pub async fn connect(addr: &str) -> Result<Conn> {
        let host = addr.trim_start_matches("http://").to_owned();
        let stream = TcpStream::connect(&host).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            host,
        })
    }

    /// Send one request and read its response; the connection stays open.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(k);
            req.push_str(": ");
            req.push_str(v);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes).await?;
        self.read_response().await
    }

    async fn fill(&mut self) -> Result<()> {
        let mut tmp = [0u8; 16 * 1024];
        let n = self.stream.read(&mut tmp).await?;
        if n == 0 {
            bail!("connection closed");
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(())
    }

    async fn read_response(&mut self) -> Result<Reply> {
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| anyhow!("non-UTF-8 header"))?
            .to_owned();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line"))?;
        let len: Option<usize> = header(&head, "content-length").and_then(|v| v.parse().ok());
        let chunked = header(&head, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        self.buf.drain(..head_end + 4);
        let body = if chunked {
            let mut out = Vec::new();
            loop {
                let nl = loop {
                    if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break p;
                    }
                    self.fill().await?;
                };
                let size = usize::from_str_radix(std::str::from_utf8(&self.buf[..nl])?.trim(), 16)?;
                self.buf.drain(..nl + 2);
                while self.buf.len() < size + 2 {
                    self.fill().await?;
                }
                out.extend_from_slice(&self.buf[..size]);
                self.buf.drain(..size + 2);
                if size == 0 {
                    break out;
                }
            }
        } else {
            let n = if status == 204 || status == 304 {
                0
            } else {
                len.unwrap_or(0)
            };
            while self.buf.len() < n {
                self.fill().await?;
            }
            self.buf.drain(..n).collect()
        };
        Ok(Reply { status, body })
    }
}

/// What one closed-loop client does per iteration; returns how many requests it made.
pub type Step = Arc<
    dyn Fn(
            usize,
            u64,
            Conn,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = (Conn, Result<u32>)> + Send>>
        + Send
        + Sync,
>;

#[derive(Default, Clone)]
pub struct LoadResult {
    /// Iterations completed (requests, or jobs for multi-request steps).
    pub ops: u64,
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Per-iteration latency in microseconds.
    pub latencies_us: Vec<u32>,
    /// CPU seconds the other server processes used during the rounds (warm-ups included),
    /// and the rounds' wall time: set by the harness's `compare`.
    pub others_cpu_secs: f64,
    pub rounds_wall: Duration,
    /// The longest the harness waited for the server processes to be quiet before one of
    /// the rounds.
    pub settle_wait: Duration,
    /// The server's own user and system CPU seconds over the measured windows, and the
    /// requests it answered in them: set by the harness's `compare` for a server process
    /// it runs.
    pub server_cpu_secs: (f64, f64),
    pub server_cpu_requests: f64,
    /// The iterations (jobs, for multi-request steps) completed in those windows.
    pub server_cpu_ops: f64,
    /// Each round's own p99 (ms), in the order the rounds ran: set by the harness's
    /// `compare`.
    pub round_p99_ms: Vec<f64>,
}

impl LoadResult {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    pub fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i] as f64 / 1000.0
    }
    pub fn merge(&mut self, o: &LoadResult) {
        self.ops += o.ops;
        self.requests += o.requests;
        self.errors += o.errors;
        self.elapsed += o.elapsed;
        self.latencies_us.extend_from_slice(&o.latencies_us);
        self.others_cpu_secs += o.others_cpu_secs;
        self.rounds_wall += o.rounds_wall;
        self.settle_wait = self.settle_wait.max(o.settle_wait);
        self.server_cpu_secs.0 += o.server_cpu_secs.0;
        self.server_cpu_secs.1 += o.server_cpu_secs.1;
        self.server_cpu_requests += o.server_cpu_requests;
        self.server_cpu_ops += o.server_cpu_ops;
        self.round_p99_ms.extend_from_slice(&o.round_p99_ms);
    }
    /// The server's user and system CPU time per request, in µs, over the measured windows
    /// (`None` where the harness did not measure it).
    pub fn server_cpu_us(&self) -> Option<(f64, f64)> {
        self.server_cpu_per(self.server_cpu_requests)
    }
    /// The same per iteration (per job for multi-request steps).
    pub fn server_cpu_per_op_us(&self) -> Option<(f64, f64)> {
        self.server_cpu_per(self.server_cpu_ops)
    }
    /// The server's user and system CPU µs over the measured windows, divided by `n`.
    fn server_cpu_per(&self, n: f64) -> Option<(f64, f64)> {
        (n > 0.0).then(|| {
            let per = 1e6 / n;
            (self.server_cpu_secs.0 * per, self.server_cpu_secs.1 * per)
        })
    }
    /// Cores the other server processes used on average while this one was measured.
    pub fn others_cores(&self) -> f64 {
        self.others_cpu_secs / self.rounds_wall.as_secs_f64().max(1e-9)
    }
}

/// Run `clients` closed-loop clients against `addr` for `warmup + duration`; only the
/// part after the warm-up is measured.
pub async fn run(
    addr: &str,
    clients: usize,
    warmup: Duration,
    duration: Duration,
    step: Step,
) -> Result<LoadResult> {
    run_paced(addr, clients, None, warmup, duration, step).await
}

/// Like [`run`], but with `rate` (iterations per second, all clients together) the
/// clients offer a fixed load instead of a closed loop: client `c`'s `i`-th iteration is
/// due at `start + (i * clients + c) / rate`. A client that is still waiting for its
/// previous response when the next one falls due sends at once, and that iteration's
/// latency counts from when it fell due, so a slow server's queueing is measured rather
/// than hidden by the clients slowing down with it (coordinated omission).
pub async fn run_paced(
    addr: &str,
    clients: usize,
    rate: Option<f64>,
    warmup: Duration,
    duration: Duration,
    step: Step,
) -> Result<LoadResult> {
    let start = Instant::now();
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (addr, step, measuring, stop) = (
            addr.to_owned(),
            step.clone(),
            measuring.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut res = LoadResult::default();
            let mut conn = Some(Conn::connect(&addr).await?);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut t0 = Instant::now();
                if let Some(rate) = rate {
                    let due = start
                        + Duration::from_secs_f64((i as f64 * clients as f64 + c as f64) / rate);
                    if t0 < due {
                        tokio::time::sleep_until(due.into()).await;
                        t0 = Instant::now();
                    } else {
                        t0 = due;
                    }
                }
                let (c2, r) = step(c, i, conn.take().expect("connection")).await;
                conn = Some(c2);
                let on = measuring.load(Ordering::Relaxed);
                match r {
                    Ok(n) if on => {
                        res.ops += 1;
                        res.requests += n as u64;
                        res.latencies_us
                            .push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        if on {
                            res.errors += 1;
                        }
                        // reconnect after an error: the stream may be out of sync
                        conn = Some(Conn::connect(&addr).await?);
                    }
                }
                i += 1;
            }
            anyhow::Ok(res)
        }));
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(duration).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut total = LoadResult::default();
    for t in tasks {
        let r = t.await??;
        total.ops += r.ops;
        total.requests += r.requests;
        total.errors += r.errors;
        total.latencies_us.extend(r.latencies_us);
    }
    total.elapsed = elapsed;
    Ok(total)
}

/// One request expecting `want` status; for simple single-request workloads.
pub fn single(
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    want: u16,
) -> Step {
    let path = Arc::new(path);
    let headers = Arc::new(headers);
    let body = Arc::new(body);
    Arc::new(move |_c, _i, mut conn| {
        let (path, headers, body) = (path.clone(), headers.clone(), body.clone());
        Box::pin(async move {
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let r = conn.send(method, &path, &h, &body).await;
            let r = match r {
                Ok(rep) if rep.status == want => Ok(1),
                Ok(rep) => Err(anyhow!(
                    "status {} {}",
                    rep.status,
                    String::from_utf8_lossy(&rep.body)
                )),
                Err(e) => Err(e),
            };
            (conn, r)
        })
    })
}

/// The value of header `name` (case-insensitive) in an HTTP head (start line and headers,
/// without the blank line), trimmed.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
