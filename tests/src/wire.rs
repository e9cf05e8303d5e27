//! A minimal, dependency-free Kafka protocol client: just enough to ask a
//! broker `ApiVersions` (is it serving Kafka requests?) and `Metadata` v1
//! (does this topic exist, with leaders for every partition?). Used by the
//! [`Broker`](crate::Broker) harness for readiness checks, so the lib does not
//! need rdkafka.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};

const API_METADATA: i16 = 3;
const API_VERSIONS: i16 = 18;
const CLIENT_ID: &str = "groundtruth-tests";

/// One partition as reported by a Metadata response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionMeta {
    /// Kafka error code for this partition (0 = none).
    pub error_code: i16,
    /// Partition index.
    pub partition: i32,
    /// Leader broker id, -1 when there is none.
    pub leader: i32,
}

/// One topic as reported by a Metadata response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMeta {
    /// Kafka error code for the topic (0 = none, 3 = unknown topic).
    pub error_code: i16,
    /// Topic name.
    pub name: String,
    /// Partitions, in the broker's order.
    pub partitions: Vec<PartitionMeta>,
}

impl TopicMeta {
    /// True when the topic has no error and `expected` partitions, each with
    /// a leader and no error: producing to it will not stall.
    pub fn is_usable(&self, expected: usize) -> bool {
        self.error_code == 0
            && self.partitions.len() == expected
            && self
                .partitions
                .iter()
                .all(|p| p.error_code == 0 && p.leader >= 0)
    }
}

/// Sends one request and returns the response body (after correlation id).
fn round_trip(
    addr: SocketAddr,
    timeout: Duration,
    api_key: i16,
    api_version: i16,
    body: &[u8],
) -> Result<Vec<u8>> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;

    let correlation_id: i32 = 0x6774; // "gt"
    let mut req = Vec::with_capacity(64 + body.len());
    req.extend_from_slice(&api_key.to_be_bytes());
    req.extend_from_slice(&api_version.to_be_bytes());
    req.extend_from_slice(&correlation_id.to_be_bytes());
    put_str(&mut req, CLIENT_ID);
    req.extend_from_slice(body);
    let len = i32::try_from(req.len()).context("request too large")?;
    stream.write_all(&len.to_be_bytes())?;
    stream.write_all(&req)?;

    let mut len_buf = [0u8; 4];
    stream
        .read_exact(&mut len_buf)
        .with_context(|| format!("reading response size (api {api_key} v{api_version})"))?;
    let len = i32::from_be_bytes(len_buf);
    ensure!(
        (4..=64 << 20).contains(&len),
        "implausible response size {len}"
    );
    let mut resp = vec![0u8; len as usize];
    stream.read_exact(&mut resp).context("reading response")?;
    let mut r = Reader::new(&resp);
    let got = r.i32()?;
    ensure!(
        got == correlation_id,
        "correlation id mismatch: sent {correlation_id}, got {got}"
    );
    Ok(resp[4..].to_vec())
}

/// Sends `ApiVersions` v0 and checks the reply; `Ok(n)` = number of APIs the
/// broker advertises. Succeeds only once the broker really serves Kafka.
pub fn api_versions(addr: SocketAddr, timeout: Duration) -> Result<usize> {
    let body = round_trip(addr, timeout, API_VERSIONS, 0, &[])?;
    let mut r = Reader::new(&body);
    let error_code = r.i16()?;
    ensure!(error_code == 0, "ApiVersions error code {error_code}");
    let n = r.i32()?;
    ensure!(n > 0, "broker advertises no APIs");
    Ok(n as usize)
}

/// Sends `Metadata` v1 for `topics` (all topics when empty) and parses the
/// topic section of the reply.
pub fn metadata(addr: SocketAddr, timeout: Duration, topics: &[&str]) -> Result<Vec<TopicMeta>> {
    let mut req = Vec::new();
    if topics.is_empty() {
        req.extend_from_slice(&(-1i32).to_be_bytes()); // null = all topics
    } else {
        req.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for t in topics {
            put_str(&mut req, t);
        }
    }
    let body = round_trip(addr, timeout, API_METADATA, 1, &req)?;
    let mut r = Reader::new(&body);
    // brokers: [node_id i32, host string, port i32, rack nullable string]
    for _ in 0..r.array_len()? {
        r.i32()?;
        r.string()?;
        r.i32()?;
        r.string()?;
    }
    r.i32()?; // controller_id
    let mut out = Vec::new();
    for _ in 0..r.array_len()? {
        let error_code = r.i16()?;
        let name = r.string()?.unwrap_or_default();
        r.i8()?; // is_internal
        let mut partitions = Vec::new();
        for _ in 0..r.array_len()? {
            let error_code = r.i16()?;
            let partition = r.i32()?;
            let leader = r.i32()?;
            for _ in 0..r.array_len()? {
                r.i32()?; // replicas
            }
            for _ in 0..r.array_len()? {
                r.i32()?; // isr
            }
            partitions.push(PartitionMeta {
                error_code,
                partition,
                leader,
            });
        }
        out.push(TopicMeta {
            error_code,
            name,
            partitions,
        });
    }
    Ok(out)
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as i16).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let end = self.pos + N;
        let Some(bytes) = self.buf.get(self.pos..end) else {
            bail!("response truncated at byte {}", self.pos);
        };
        self.pos = end;
        Ok(bytes.try_into().expect("slice has length N"))
    }

    fn i8(&mut self) -> Result<i8> {
        Ok(i8::from_be_bytes(self.take()?))
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take()?))
    }

    /// Array length; a null array (-1) reads as empty.
    fn array_len(&mut self) -> Result<usize> {
        let n = self.i32()?;
        ensure!((-1..1_000_000).contains(&n), "implausible array length {n}");
        Ok(n.max(0) as usize)
    }

    /// Nullable string.
    fn string(&mut self) -> Result<Option<String>> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let end = self.pos + n as usize;
        let Some(bytes) = self.buf.get(self.pos..end) else {
            bail!("string truncated at byte {}", self.pos);
        };
        self.pos = end;
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    }
}
