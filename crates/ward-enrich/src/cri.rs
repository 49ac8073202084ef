//! Container and pod metadata from the Kubernetes CRI (`runtime.v1.RuntimeService`) that
//! containerd and CRI-O serve on a unix socket (feature `cri`, off by default).
//!
//! gRPC is spoken directly: HTTP/2 (hyper) on a `tokio` unix stream, each message framed as
//! 1 byte compression flag + 4 bytes big-endian length + protobuf. The few messages needed are
//! declared here with prost (only the fields Ward reads; prost skips the others), so no
//! protoc is needed. Calls: `ListContainers` (filter by id → the pod sandbox id),
//! `ContainerStatus` (name, image, labels, created), `PodSandboxStatus` (pod name, namespace,
//! labels).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use prost::Message;
use ward_event::{ContainerMeta, PodMeta};

use crate::runtime::ApiError;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint32, tag = "2")]
    pub attempt: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageSpec {
    #[prost(string, tag = "1")]
    pub image: String,
    #[prost(string, tag = "18")]
    pub user_specified_image: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerFilter {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "3")]
    pub pod_sandbox_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListContainersRequest {
    #[prost(message, optional, tag = "1")]
    pub filter: Option<ContainerFilter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Container {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub pod_sandbox_id: String,
    #[prost(message, optional, tag = "3")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(message, optional, tag = "4")]
    pub image: Option<ImageSpec>,
    #[prost(string, tag = "5")]
    pub image_ref: String,
    #[prost(int64, tag = "7")]
    pub created_at: i64,
    #[prost(map = "string, string", tag = "8")]
    pub labels: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListContainersResponse {
    #[prost(message, repeated, tag = "1")]
    pub containers: Vec<Container>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatusRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(bool, tag = "2")]
    pub verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatus {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(int64, tag = "4")]
    pub created_at: i64,
    #[prost(message, optional, tag = "8")]
    pub image: Option<ImageSpec>,
    #[prost(string, tag = "9")]
    pub image_ref: String,
    #[prost(map = "string, string", tag = "12")]
    pub labels: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatusResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<ContainerStatus>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatusRequest {
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
    #[prost(bool, tag = "2")]
    pub verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub uid: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
    #[prost(uint32, tag = "4")]
    pub attempt: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatus {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<PodSandboxMetadata>,
    #[prost(map = "string, string", tag = "7")]
    pub labels: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatusResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<PodSandboxStatus>,
}

/// gRPC message framing: uncompressed flag, big-endian length, payload.
pub fn frame<M: Message>(m: &M) -> Bytes {
    let len = m.encoded_len();
    let mut b = BytesMut::with_capacity(5 + len);
    b.put_u8(0);
    b.put_u32(len as u32);
    m.encode(&mut b).expect("BytesMut grows");
    b.freeze()
}

/// The first message of a gRPC response body.
pub fn unframe<M: Message + Default>(mut body: Bytes) -> Result<M, String> {
    if body.len() < 5 {
        return Err(format!("response body of {} bytes", body.len()));
    }
    let compressed = body.get_u8();
    let len = body.get_u32() as usize;
    if compressed != 0 {
        return Err("compressed gRPC message".into());
    }
    if body.len() < len {
        return Err(format!("message of {len} bytes, {} received", body.len()));
    }
    M::decode(body.slice(..len)).map_err(|e| e.to_string())
}

async fn call<Req: Message, Resp: Message + Default>(
    socket: &Path,
    method: &str,
    req: &Req,
) -> Result<Resp, ApiError> {
    let io = |source: std::io::Error| ApiError::Io {
        socket: socket.to_path_buf(),
        source,
    };
    let bad = |detail: String| ApiError::Malformed {
        socket: socket.to_path_buf(),
        path: method.to_string(),
        detail,
    };
    let stream = tokio::net::UnixStream::connect(socket).await.map_err(io)?;
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .map_err(|e| bad(format!("HTTP/2 handshake: {e}")))?;
    tokio::spawn(conn);
    let request = hyper::Request::post(format!("http://localhost{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(frame(req)))
        .map_err(|e| bad(e.to_string()))?;
    let resp = send
        .send_request(request)
        .await
        .map_err(|e| bad(format!("request: {e}")))?;
    let status = resp.status().as_u16();
    let header_status = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let collected = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| bad(format!("body: {e}")))?;
    let trailer_status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let grpc = trailer_status
        .or(header_status)
        .unwrap_or_else(|| "0".into());
    if status != 200 || grpc != "0" {
        // gRPC NOT_FOUND (5) is reported like HTTP 404, so callers can tell it apart.
        return Err(ApiError::Status {
            socket: socket.to_path_buf(),
            path: method.to_string(),
            status: if grpc == "5" {
                404
            } else {
                500 + grpc.parse::<u16>().unwrap_or(99)
            },
        });
    }
    unframe(collected.to_bytes()).map_err(bad)
}

fn nonzero_ns(ns: i64) -> Option<u64> {
    (ns > 0).then_some(ns as u64)
}

async fn inspect_async(socket: &Path, id: &str) -> Result<ContainerMeta, ApiError> {
    let status: ContainerStatusResponse = call(
        socket,
        "/runtime.v1.RuntimeService/ContainerStatus",
        &ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        },
    )
    .await?;
    let st = status.status.unwrap_or_default();
    let labels: BTreeMap<String, String> = st.labels.into_iter().collect();
    let image = st
        .image
        .map(|i| {
            if i.user_specified_image.is_empty() {
                i.image
            } else {
                i.user_specified_image
            }
        })
        .unwrap_or_default();
    let mut meta = ContainerMeta {
        name: st.metadata.map(|m| m.name).unwrap_or_default(),
        image,
        image_id: st.image_ref,
        created: nonzero_ns(st.created_at),
        labels,
        pod: None,
        note: None,
    };
    // The pod: its sandbox id from ListContainers, then PodSandboxStatus.
    let list: ListContainersResponse = call(
        socket,
        "/runtime.v1.RuntimeService/ListContainers",
        &ListContainersRequest {
            filter: Some(ContainerFilter {
                id: id.to_string(),
                pod_sandbox_id: String::new(),
            }),
        },
    )
    .await?;
    let sandbox = list
        .containers
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| c.pod_sandbox_id)
        .unwrap_or_default();
    if !sandbox.is_empty() {
        if let Ok(pod) = call::<_, PodSandboxStatusResponse>(
            socket,
            "/runtime.v1.RuntimeService/PodSandboxStatus",
            &PodSandboxStatusRequest {
                pod_sandbox_id: sandbox,
                verbose: false,
            },
        )
        .await
        {
            if let Some(ps) = pod.status {
                let md = ps.metadata.unwrap_or_default();
                meta.pod = Some(PodMeta {
                    name: md.name,
                    namespace: md.namespace,
                    labels: ps.labels.into_iter().collect(),
                });
            }
        }
    }
    if meta.pod.is_none() {
        if let (Some(n), Some(ns)) = (
            meta.labels.get("io.kubernetes.pod.name"),
            meta.labels.get("io.kubernetes.pod.namespace"),
        ) {
            meta.pod = Some(PodMeta {
                name: n.clone(),
                namespace: ns.clone(),
                labels: BTreeMap::new(),
            });
        }
    }
    Ok(meta)
}

/// Asks the CRI runtime on `socket` about container `id` (blocking, bounded by `timeout`).
pub fn cri_inspect(socket: &Path, id: &str, timeout: Duration) -> Result<ContainerMeta, ApiError> {
    block_on_timeout(socket, timeout, inspect_async(socket, id))
}

/// One unary call of any `runtime.v1` method, e.g. `/runtime.v1.RuntimeService/RunPodSandbox`,
/// with messages the caller declares (blocking, bounded by `timeout`). Ward itself only reads;
/// this is for tests that drive a real runtime (`tests/cri_live.rs` starts a pod with it).
pub fn cri_call<Req: Message, Resp: Message + Default>(
    socket: &Path,
    method: &str,
    req: &Req,
    timeout: Duration,
) -> Result<Resp, ApiError> {
    block_on_timeout(socket, timeout, call(socket, method, req))
}

fn block_on_timeout<T>(
    socket: &Path,
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ApiError::Io {
            socket: socket.to_path_buf(),
            source,
        })?;
    rt.block_on(async {
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(ApiError::Io {
                socket: socket.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "CRI request not answered within the timeout",
                ),
            }),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trip() {
        let req = ContainerStatusRequest {
            container_id: "c".repeat(64),
            verbose: false,
        };
        let f = frame(&req);
        assert_eq!(f[0], 0);
        assert_eq!(
            u32::from_be_bytes([f[1], f[2], f[3], f[4]]) as usize,
            f.len() - 5
        );
        let back: ContainerStatusRequest = unframe(f).unwrap();
        assert_eq!(back, req);
        assert!(unframe::<ContainerStatusRequest>(Bytes::from_static(b"\0\0")).is_err());
        assert!(unframe::<ContainerStatusRequest>(Bytes::from_static(b"\x01\0\0\0\0")).is_err());
    }

    #[test]
    fn wire_tags_match_the_cri_api() {
        // ContainerStatusRequest{container_id: "ab"}: field 1, wire type 2 (len), "ab".
        let b = ContainerStatusRequest {
            container_id: "ab".into(),
            verbose: true,
        }
        .encode_to_vec();
        assert_eq!(b, [0x0a, 2, b'a', b'b', 0x10, 1]);
        // PodSandboxMetadata namespace is field 3.
        let b = PodSandboxMetadata {
            namespace: "ns".into(),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(b, [0x1a, 2, b'n', b's']);
        // ContainerStatus labels are field 12 (a map entry: key 1, value 2).
        let mut labels = HashMap::new();
        labels.insert("k".to_string(), "v".to_string());
        let b = ContainerStatus {
            labels,
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(b, [0x62, 6, 0x0a, 1, b'k', 0x12, 1, b'v']);
    }

    #[test]
    fn unanswered_socket_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cri.sock");
        let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let t = std::time::Instant::now();
        let e = cri_inspect(&path, &"d".repeat(64), Duration::from_millis(200)).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(3), "{e}");
        let e = cri_inspect(
            &dir.path().join("none.sock"),
            "x",
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(e.to_string().contains("none.sock"), "{e}");
    }
}
