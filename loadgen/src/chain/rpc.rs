//! The JSON-RPC server: HTTP/1.1 POST with basic auth, JSON-RPC 1.0 and 2.0 and batches, with
//! Bitcoin Core's status codes, error codes and messages.
//!
//! Core's HTTP statuses: a JSON-RPC 1.0 (legacy) error reply is HTTP 500, or 404 for
//! `-32601` and 400 for `-32600`; a JSON-RPC 2.0 reply and a batch are always HTTP 200; a
//! missing or wrong `Authorization` is HTTP 401 with an empty body; a method other than POST
//! is 405.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bitcoin::{Address, Block, BlockHash, Network};
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::Shared;
use super::state::{ChainState, SubmitError};

/// The largest request body: a 4 MWU block in hex, with room to spare.
const REQUEST_BYTES_MAX: usize = 32 << 20;
/// Requests in one batch.
const BATCH_MAX: usize = 1_000;
/// Connections served at once; more are closed on accept.
const CONNECTIONS_MAX: usize = 256;

/// `RPC_MISC_ERROR`.
const RPC_MISC_ERROR: i64 = -1;
/// `RPC_TYPE_ERROR`.
const RPC_TYPE_ERROR: i64 = -3;
/// `RPC_INVALID_ADDRESS_OR_KEY`.
const RPC_INVALID_ADDRESS_OR_KEY: i64 = -5;
/// `RPC_INVALID_PARAMETER`.
const RPC_INVALID_PARAMETER: i64 = -8;
/// `RPC_CLIENT_IN_INITIAL_DOWNLOAD`.
const RPC_CLIENT_IN_INITIAL_DOWNLOAD: i64 = -10;
/// `RPC_DESERIALIZATION_ERROR`.
const RPC_DESERIALIZATION_ERROR: i64 = -22;
/// `RPC_INVALID_REQUEST`.
const RPC_INVALID_REQUEST: i64 = -32600;
/// `RPC_METHOD_NOT_FOUND`.
const RPC_METHOD_NOT_FOUND: i64 = -32601;
/// `RPC_PARSE_ERROR`.
const RPC_PARSE_ERROR: i64 = -32700;

type RpcError = (i64, String);
type Reply = Response<Either<Full<Bytes>, Chunked>>;

/// A body sent with chunked transfer encoding (its size is not announced).
#[derive(Debug)]
pub(crate) struct Chunked {
    chunks: VecDeque<Bytes>,
}

impl Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.chunks.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

/// Accepts connections until the task is aborted (which aborts the connections too).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                if conns.len() >= CONNECTIONS_MAX || shared.rpc_dropping.load(Ordering::Relaxed) {
                    continue; // dropped: closed
                }
                let _ = stream.set_nodelay(true);
                let sh = Arc::clone(&shared);
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&sh), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// `Basic <base64(user:password)>`, the `Authorization` header value.
pub(crate) fn basic_auth(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::from("Basic ");
    for chunk in input.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn reply(shared: &Shared, status: StatusCode, body: Vec<u8>, content_type: &'static str) -> Reply {
    let body = if shared.chunked && !body.is_empty() {
        let mid = body.len() / 2;
        let body = Bytes::from(body);
        Either::Right(Chunked {
            chunks: VecDeque::from([body.slice(..mid), body.slice(mid..)]),
        })
    } else {
        Either::Left(Full::new(Bytes::from(body)))
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Reply, std::io::Error> {
    if shared.rpc_dropping.load(Ordering::Relaxed) {
        // An error from the service makes hyper close the connection without a response.
        return Err(std::io::Error::other("simulated connection drop"));
    }
    if shared.rpc_failing.load(Ordering::Relaxed) {
        return Ok(reply(
            &shared,
            StatusCode::INTERNAL_SERVER_ERROR,
            b"simulated outage\n".to_vec(),
            "text/plain",
        ));
    }
    let expected = basic_auth(&shared.user, &shared.password);
    let authorized = req
        .headers()
        .get(AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if !authorized {
        let mut r = reply(&shared, StatusCode::UNAUTHORIZED, Vec::new(), "text/html");
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"jsonrpc\""),
        );
        return Ok(r);
    }
    if req.method() != Method::POST {
        return Ok(reply(
            &shared,
            StatusCode::METHOD_NOT_ALLOWED,
            b"JSONRPC server handles only POST requests".to_vec(),
            "text/html",
        ));
    }
    let body = match Limited::new(req.into_body(), REQUEST_BYTES_MAX)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(reply(
                &shared,
                StatusCode::PAYLOAD_TOO_LARGE,
                Vec::new(),
                "text/html",
            ));
        }
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        let v = error_object(false, &Value::Null, RPC_PARSE_ERROR, "Parse error");
        return Ok(json_reply(&shared, StatusCode::INTERNAL_SERVER_ERROR, &v));
    };
    let (status, value) = match request {
        Value::Array(batch) if batch.len() > BATCH_MAX => {
            let v = error_object(false, &Value::Null, RPC_INVALID_REQUEST, "Batch too large");
            (StatusCode::BAD_REQUEST, v)
        }
        Value::Array(batch) => {
            let mut out = Vec::with_capacity(batch.len());
            for r in &batch {
                out.push(call(&shared, r).await.1);
            }
            (StatusCode::OK, Value::Array(out))
        }
        single => call(&shared, &single).await,
    };
    Ok(json_reply(&shared, status, &value))
}

fn json_reply(shared: &Shared, status: StatusCode, v: &Value) -> Reply {
    let mut text = serde_json::to_vec(v).unwrap_or_default();
    text.push(b'\n');
    reply(shared, status, text, "application/json")
}

fn error_object(v2: bool, id: &Value, code: i64, message: &str) -> Value {
    let err = json!({"code": code, "message": message});
    if v2 {
        json!({"jsonrpc": "2.0", "error": err, "id": id})
    } else {
        json!({"result": null, "error": err, "id": id})
    }
}

/// One request object: the HTTP status it would get alone and the reply object.
async fn call(shared: &Shared, request: &Value) -> (StatusCode, Value) {
    let Some(obj) = request.as_object() else {
        let v = error_object(
            false,
            &Value::Null,
            RPC_INVALID_REQUEST,
            "Invalid Request object",
        );
        return (StatusCode::BAD_REQUEST, v);
    };
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    let v2 = obj.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        let v = error_object(v2, &id, RPC_INVALID_REQUEST, "Method must be a string");
        let status = if v2 {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        return (status, v);
    };
    let params = obj.get("params").cloned().unwrap_or(Value::Null);
    match dispatch(shared, method, &params).await {
        Ok(result) => {
            let v = if v2 {
                json!({"jsonrpc": "2.0", "result": result, "id": id})
            } else {
                json!({"result": result, "error": null, "id": id})
            };
            (StatusCode::OK, v)
        }
        Err((code, message)) => {
            let status = match (v2, code) {
                (true, _) => StatusCode::OK,
                (false, RPC_METHOD_NOT_FOUND) => StatusCode::NOT_FOUND,
                (false, RPC_INVALID_REQUEST) => StatusCode::BAD_REQUEST,
                (false, _) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, error_object(v2, &id, code, &message))
        }
    }
}

/// Positional (`[..]`) or named (`{..}`) parameter `index`/`name`.
fn param<'a>(params: &'a Value, index: usize, name: &str) -> Option<&'a Value> {
    match params {
        Value::Array(a) => a.get(index),
        Value::Object(o) => o.get(name),
        _ => None,
    }
    .filter(|v| !v.is_null())
}

fn str_param<'a>(params: &'a Value, index: usize, name: &str) -> Result<&'a str, RpcError> {
    match param(params, index, name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err((
            RPC_TYPE_ERROR,
            format!("JSON value of type for {name} is not of expected type string"),
        )),
        None => Err((RPC_MISC_ERROR, format!("missing required parameter {name}"))),
    }
}

async fn dispatch(shared: &Shared, method: &str, params: &Value) -> Result<Value, RpcError> {
    match method {
        "getblocktemplate" => getblocktemplate(shared, params).await,
        "submitblock" => submitblock(shared, params),
        "getblockchaininfo" => Ok(getblockchaininfo(shared)),
        "getbestblockhash" => Ok(json!(shared.lock().tip().hash.to_string())),
        "getblockcount" => Ok(json!(shared.lock().height())),
        "getblockhash" => getblockhash(shared, params),
        "getblockheader" => getblockheader(shared, params),
        "getnetworkinfo" => Ok(getnetworkinfo()),
        "getmininginfo" => Ok(getmininginfo(shared)),
        "validateaddress" => validateaddress(params),
        "generatetoaddress" => generatetoaddress(shared, params),
        "getblock" => getblock(shared, params),
        "invalidateblock" => change_validity(shared, params, true),
        "reconsiderblock" => change_validity(shared, params, false),
        _ => Err((RPC_METHOD_NOT_FOUND, "Method not found".into())),
    }
}

async fn getblocktemplate(shared: &Shared, params: &Value) -> Result<Value, RpcError> {
    let request = match param(params, 0, "template_request") {
        None => serde_json::Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => {
            return Err((
                RPC_TYPE_ERROR,
                "JSON value of type for template_request is not of expected type object".into(),
            ));
        }
    };
    match request.get("mode").and_then(Value::as_str) {
        None | Some("template") => {}
        Some("proposal") => {
            let data = request.get("data").and_then(Value::as_str).ok_or((
                RPC_TYPE_ERROR,
                "Missing data String key for proposal".to_owned(),
            ))?;
            let block = decode_block(data)?;
            return match shared.lock().propose(&block) {
                Ok(()) => Ok(Value::Null),
                Err(SubmitError::Reject(reason)) => Ok(json!(reason)),
                Err(SubmitError::Deserialize(m)) => Err((RPC_DESERIALIZATION_ERROR, m.into())),
            };
        }
        Some(_) => return Err((RPC_INVALID_PARAMETER, "Invalid mode".into())),
    }
    if shared.ibd.load(Ordering::Relaxed) {
        return Err((
            RPC_CLIENT_IN_INITIAL_DOWNLOAD,
            "Bitcoin Core is in initial sync and waiting for blocks...".into(),
        ));
    }
    if let Some(id) = request.get("longpollid") {
        let Some(id) = id.as_str() else {
            return Err((
                RPC_TYPE_ERROR,
                "JSON value of type for longpollid is not of expected type string".into(),
            ));
        };
        let mut rx = shared.changes.subscribe();
        let deadline = tokio::time::Instant::now() + shared.longpoll_timeout;
        while shared.lock().longpollid() == id {
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                break;
            }
        }
    }
    let segwit = request
        .get("rules")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|x| x.as_str() == Some("segwit")));
    if !segwit {
        return Err((
            RPC_INVALID_PARAMETER,
            concat!(
                "getblocktemplate must be called with the segwit rule set ",
                "(call with {\"rules\": [\"segwit\"]})"
            )
            .into(),
        ));
    }
    Ok(shared.lock().template_json())
}

fn decode_block(hexdata: &str) -> Result<Block, RpcError> {
    warppool_core::hex::decode(hexdata)
        .ok()
        .and_then(|b| bitcoin::consensus::deserialize(&b).ok())
        .ok_or((RPC_DESERIALIZATION_ERROR, "Block decode failed".to_owned()))
}

fn submitblock(shared: &Shared, params: &Value) -> Result<Value, RpcError> {
    let hexdata = str_param(params, 0, "hexdata")?;
    let block = decode_block(hexdata)?;
    let (outcome, new_tip, updates) = shared.process_block(&block, false, true);
    // A side-branch block or a rejection may still move the tip (a reorg, or back after
    // Core's engine rejected a block the simulator had connected).
    shared.after_change(new_tip, updates);
    match outcome {
        Ok(()) => Ok(Value::Null),
        Err(SubmitError::Reject(reason)) => Ok(json!(reason)),
        Err(SubmitError::Deserialize(m)) => Err((RPC_DESERIALIZATION_ERROR, m.into())),
    }
}

/// A `blockhash` parameter, with Core's messages.
fn hash_param(params: &Value, index: usize, name: &str) -> Result<BlockHash, RpcError> {
    let text = str_param(params, index, name)?;
    if text.len() != 64 {
        return Err((
            RPC_INVALID_PARAMETER,
            format!(
                "{name} must be of length 64 (not {}, for '{text}')",
                text.len()
            ),
        ));
    }
    BlockHash::from_str(text).map_err(|_| {
        (
            RPC_INVALID_PARAMETER,
            format!("{name} must be hexadecimal string (not '{text}')"),
        )
    })
}

/// `invalidateblock <hash>` / `reconsiderblock <hash>`: `null`, or -5 for an unknown block.
fn change_validity(shared: &Shared, params: &Value, invalidate: bool) -> Result<Value, RpcError> {
    let hash = hash_param(params, 0, "blockhash")?;
    let result = if invalidate {
        shared.change_validity(|s| s.invalidate(&hash))
    } else {
        shared.change_validity(|s| s.reconsider(&hash).map(|_| ()))
    };
    match result {
        Ok(()) => Ok(Value::Null),
        Err("Block not found") => Err((RPC_INVALID_ADDRESS_OR_KEY, "Block not found".into())),
        Err(m) => Err((RPC_MISC_ERROR, m.into())),
    }
}

/// `getblock <hash> [verbosity]`: 0 the hex, 1 a minimal verbose object (hash,
/// confirmations, height, tx ids and the header fields), as Core names them.
fn getblock(shared: &Shared, params: &Value) -> Result<Value, RpcError> {
    let hash = hash_param(params, 0, "blockhash")?;
    let verbosity = match param(params, 1, "verbosity") {
        None => 1,
        Some(Value::Bool(b)) => i64::from(*b),
        Some(v) => v.as_i64().ok_or((
            RPC_TYPE_ERROR,
            "JSON value of type for verbosity is not of expected type number".to_owned(),
        ))?,
    };
    let s = shared.lock();
    let entry = s
        .lookup(&hash)
        .ok_or((RPC_INVALID_ADDRESS_OR_KEY, "Block not found".to_owned()))?;
    if verbosity == 0 {
        let bytes = bitcoin::consensus::serialize(&*entry.block);
        return Ok(json!(warppool_core::hex::encode(&bytes)));
    }
    let txids: Vec<String> = entry
        .block
        .txdata
        .iter()
        .map(|t| t.compute_txid().to_string())
        .collect();
    let mut v = json!({
        "hash": entry.hash.to_string(),
        "confirmations": s.confirmations(entry),
        "height": entry.height,
        "version": entry.header.version.to_consensus(),
        "merkleroot": entry.header.merkle_root.to_string(),
        "time": entry.header.time,
        "nonce": entry.header.nonce,
        "bits": format!("{:08x}", entry.header.bits.to_consensus()),
        "chainwork": chainwork_hex(entry.chainwork),
        "nTx": entry.tx_count,
        "size": entry.size,
        "weight": entry.weight,
        "tx": txids,
    });
    if entry.height > 0 {
        v["previousblockhash"] = json!(entry.header.prev_blockhash.to_string());
    }
    Ok(v)
}

fn chainwork_hex(w: bitcoin::Work) -> String {
    warppool_core::hex::encode(&w.to_be_bytes())
}

fn getblockchaininfo(shared: &Shared) -> Value {
    let ibd = shared.ibd.load(Ordering::Relaxed);
    let s = shared.lock();
    let tip = s.tip();
    json!({
        "chain": "regtest",
        "blocks": tip.height,
        "headers": tip.height,
        "bestblockhash": tip.hash.to_string(),
        "difficulty": ChainState::difficulty(tip.header.bits.to_consensus()),
        "time": tip.header.time,
        "mediantime": s.median_time_past(tip.height),
        "verificationprogress": if ibd { 0.5 } else { 1.0 },
        "initialblockdownload": ibd,
        "chainwork": chainwork_hex(tip.chainwork),
        "size_on_disk": s.chain_bytes(),
        "pruned": false,
        "warnings": "",
    })
}

fn getblockhash(shared: &Shared, params: &Value) -> Result<Value, RpcError> {
    let height = param(params, 0, "height")
        .ok_or((
            RPC_MISC_ERROR,
            "missing required parameter height".to_owned(),
        ))?
        .as_i64()
        .ok_or((
            RPC_TYPE_ERROR,
            "JSON value of type for height is not of expected type number".to_owned(),
        ))?;
    let s = shared.lock();
    usize::try_from(height)
        .ok()
        .and_then(|h| s.main_chain().get(h))
        .map(|e| json!(e.hash.to_string()))
        .ok_or((RPC_INVALID_PARAMETER, "Block height out of range".into()))
}

fn getblockheader(shared: &Shared, params: &Value) -> Result<Value, RpcError> {
    let hash = hash_param(params, 0, "blockhash")?;
    let verbose = match param(params, 1, "verbose") {
        None => true,
        Some(v) => v.as_bool().ok_or((
            RPC_TYPE_ERROR,
            "JSON value of type for verbose is not of expected type bool".to_owned(),
        ))?,
    };
    let s = shared.lock();
    let entry = s
        .lookup(&hash)
        .ok_or((RPC_INVALID_ADDRESS_OR_KEY, "Block not found".to_owned()))?;
    if !verbose {
        return Ok(json!(warppool_core::hex::encode(
            &bitcoin::consensus::serialize(&entry.header)
        )));
    }
    let main = s.in_main_chain(entry);
    let confirmations = s.confirmations(entry);
    let bits = entry.header.bits.to_consensus();
    let mut v = json!({
        "hash": entry.hash.to_string(),
        "confirmations": confirmations,
        "height": entry.height,
        "version": entry.header.version.to_consensus(),
        "versionHex": format!("{:08x}", entry.header.version.to_consensus()),
        "merkleroot": entry.header.merkle_root.to_string(),
        "time": entry.header.time,
        "mediantime": s.median_time_past_of(&entry.hash),
        "nonce": entry.header.nonce,
        "bits": format!("{bits:08x}"),
        "difficulty": ChainState::difficulty(bits),
        "chainwork": chainwork_hex(entry.chainwork),
        "nTx": entry.tx_count,
    });
    if entry.height > 0 {
        v["previousblockhash"] = json!(entry.header.prev_blockhash.to_string());
    }
    if main && let Some(next) = s.main_chain().get(entry.height as usize + 1) {
        v["nextblockhash"] = json!(next.hash.to_string());
    }
    Ok(v)
}

fn getnetworkinfo() -> Value {
    json!({
        "version": 270_000,
        "subversion": "/Satoshi:27.0.0/",
        "protocolversion": 70016,
        "localservices": "0000000000000c09",
        "localservicesnames": ["NETWORK", "WITNESS", "NETWORK_LIMITED", "P2P_V2"],
        "localrelay": true,
        "timeoffset": 0,
        "networkactive": true,
        "connections": 1,
        "connections_in": 0,
        "connections_out": 1,
        "networks": [],
        "relayfee": 0.00001,
        "incrementalfee": 0.00001,
        "localaddresses": [],
        "warnings": "",
    })
}

fn getmininginfo(shared: &Shared) -> Value {
    let s = shared.lock();
    let tip = s.tip();
    json!({
        "blocks": tip.height,
        "currentblockweight": tip.weight,
        "currentblocktx": tip.tx_count.saturating_sub(1),
        "difficulty": ChainState::difficulty(s.bits()),
        "networkhashps": 0.0,
        "pooledtx": s.mempool_len(),
        "chain": "regtest",
        "warnings": "",
    })
}

/// Most blocks one `generatetoaddress` call mines (Core has no bound; a simulator needs one).
const GENERATE_BLOCKS_MAX: u64 = 1_000;

/// `generatetoaddress nblocks address`: mines `nblocks` blocks on the tip paying `address`
/// (a regtest address), publishes `hashblock` for each and returns their hashes.
fn generatetoaddress(shared: &Shared, params: &Value) -> Result<Value, RpcError> {
    let n = match param(params, 0, "nblocks") {
        Some(v) => v.as_u64().ok_or((
            RPC_TYPE_ERROR,
            "JSON value of type for nblocks is not of expected type number".to_owned(),
        ))?,
        None => return Err((RPC_MISC_ERROR, "missing required parameter nblocks".into())),
    };
    if n > GENERATE_BLOCKS_MAX {
        return Err((
            RPC_INVALID_PARAMETER,
            format!("nblocks above the simulator's bound of {GENERATE_BLOCKS_MAX}"),
        ));
    }
    let text = str_param(params, 1, "address")?;
    let script = Address::from_str(text)
        .ok()
        .filter(|a| a.is_valid_for_network(Network::Regtest))
        .map(|a| a.assume_checked().script_pubkey())
        .ok_or((
            RPC_INVALID_ADDRESS_OR_KEY,
            "Error: Invalid address".to_owned(),
        ))?;
    let hashes: Vec<String> = (0..n)
        .map(|_| shared.mine_to(Some(&script)).to_string())
        .collect();
    Ok(json!(hashes))
}

fn validateaddress(params: &Value) -> Result<Value, RpcError> {
    let text = str_param(params, 0, "address")?;
    let parsed = Address::from_str(text)
        .ok()
        .filter(|a| a.is_valid_for_network(Network::Regtest))
        .map(bitcoin::Address::assume_checked);
    let Some(addr) = parsed else {
        return Ok(json!({
            "isvalid": false,
            "error_locations": [],
            "error": "Invalid or unsupported Segwit (Bech32) or Base58 encoding.",
        }));
    };
    let script = addr.script_pubkey();
    let mut v = json!({
        "isvalid": true,
        "address": addr.to_string(),
        "scriptPubKey": warppool_core::hex::encode(script.as_bytes()),
        "isscript": script.is_p2sh() || script.is_p2wsh(),
        "iswitness": script.is_witness_program(),
    });
    if let Some(program) = addr.witness_program() {
        v["witness_version"] = json!(program.version().to_num());
        v["witness_program"] = json!(warppool_core::hex::encode(program.program().as_bytes()));
    }
    Ok(v)
}
