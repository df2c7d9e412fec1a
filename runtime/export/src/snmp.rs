//! A read-only SNMPv2c agent: GET, GETNEXT and GETBULK over UDP for a tree of values the
//! caller snapshots per request (health score, alert and client counts, key metrics).
//! Requests with another community are dropped and counted, as snmpd does; SET is refused.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rasn::types::{Integer, ObjectIdentifier, OctetString};
use rasn_smi::v1::{Gauge, TimeTicks};
use rasn_smi::v2::{Counter64, ObjectSyntax};
use rasn_snmp::v2::{Pdu, Pdus, Response, VarBind, VarBindValue};
use rasn_snmp::v2c::Message;

/// Most variable bindings in one answer (GETBULK is cut there).
const MAX_BINDINGS: usize = 256;
/// Largest answer (bytes): what fits one unfragmented datagram on most paths.
const MAX_ANSWER: usize = 8192;

/// A value in the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// INTEGER.
    Integer(i64),
    /// Gauge32.
    Gauge(u32),
    /// Counter64.
    Counter(u64),
    /// TimeTicks (hundredths of a second).
    Ticks(u32),
    /// OCTET STRING.
    Text(String),
}

impl Value {
    fn syntax(&self) -> ObjectSyntax {
        match self {
            Value::Integer(v) => Integer::from(*v).into(),
            Value::Gauge(v) => Gauge(*v).into(),
            Value::Counter(v) => Counter64(*v).into(),
            Value::Ticks(v) => TimeTicks(*v).into(),
            Value::Text(t) => OctetString::from(t.clone().into_bytes()).into(),
        }
    }
}

/// The tree: OID (as arcs) → value.
pub type Tree = BTreeMap<Vec<u32>, Value>;

/// Parse dotted OID text (`1.3.6.1.4.1.32473.1`).
pub fn parse_oid(text: &str) -> Result<Vec<u32>, String> {
    let arcs: Result<Vec<u32>, _> = text
        .trim()
        .trim_start_matches('.')
        .split('.')
        .map(str::parse::<u32>)
        .collect();
    match arcs {
        Ok(a) if a.len() >= 2 && a[0] <= 2 && ObjectIdentifier::new(a.clone()).is_some() => Ok(a),
        _ => Err(format!(
            "`{text}` is not an OID (dotted numbers, e.g. 1.3.6.1.4.1.32473.1)"
        )),
    }
}

fn oid(arcs: &[u32]) -> ObjectIdentifier {
    ObjectIdentifier::new_unchecked(arcs.to_vec().into())
}

fn next_after<'t>(tree: &'t Tree, name: &[u32]) -> Option<(&'t Vec<u32>, &'t Value)> {
    use std::ops::Bound::{Excluded, Unbounded};
    tree.range::<[u32], _>((Excluded(name), Unbounded)).next()
}

fn next_binding(tree: &Tree, name: &ObjectIdentifier) -> VarBind {
    match next_after(tree, name) {
        Some((k, v)) => VarBind {
            name: oid(k),
            value: VarBindValue::Value(v.syntax()),
        },
        None => VarBind {
            name: name.clone(),
            value: VarBindValue::EndOfMibView,
        },
    }
}

fn get_binding(tree: &Tree, name: &ObjectIdentifier) -> VarBind {
    let arcs: &[u32] = name;
    let value = match tree.get(arcs) {
        Some(v) => VarBindValue::Value(v.syntax()),
        // An object whose instance is missing (`.0` left off) vs. no such object at all.
        None if tree
            .keys()
            .any(|k| k.len() > arcs.len() && k.starts_with(arcs)) =>
        {
            VarBindValue::NoSuchInstance
        }
        None => VarBindValue::NoSuchObject,
    };
    VarBind {
        name: name.clone(),
        value,
    }
}

/// What happened to a datagram.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Answer with these bytes.
    Answer(Vec<u8>),
    /// Not SNMPv2c, or not decodable: dropped.
    Malformed,
    /// Another community: dropped.
    WrongCommunity,
}

/// Answer one request datagram against the tree `snapshot` builds — only once the
/// datagram is a well-formed request with the right community.
pub fn handle(request: &[u8], community: &[u8], snapshot: impl FnOnce() -> Tree) -> Outcome {
    let Ok(message) = rasn::ber::decode::<Message<Pdus>>(request) else {
        return Outcome::Malformed;
    };
    if message.version != Integer::from(1) {
        return Outcome::Malformed;
    }
    if message.community.as_ref() != community {
        return Outcome::WrongCommunity;
    }
    if !matches!(
        message.data,
        Pdus::GetRequest(_)
            | Pdus::GetNextRequest(_)
            | Pdus::GetBulkRequest(_)
            | Pdus::SetRequest(_)
    ) {
        // Responses, traps, informs and reports are not requests to an agent.
        return Outcome::Malformed;
    }
    let tree = &snapshot();
    let answer = |request_id: i32, error_status: u32, error_index: u32, bindings: Vec<VarBind>| {
        let response = Message {
            version: Integer::from(1),
            community: message.community.clone(),
            data: Pdus::Response(Response(Pdu {
                request_id,
                error_status,
                error_index,
                variable_bindings: bindings,
            })),
        };
        rasn::ber::encode(&response).ok()
    };
    let bytes = match &message.data {
        Pdus::GetRequest(r) => answer(
            r.0.request_id,
            0,
            0,
            r.0.variable_bindings
                .iter()
                .map(|b| get_binding(tree, &b.name))
                .collect(),
        ),
        Pdus::GetNextRequest(r) => answer(
            r.0.request_id,
            0,
            0,
            r.0.variable_bindings
                .iter()
                .map(|b| next_binding(tree, &b.name))
                .collect(),
        ),
        Pdus::GetBulkRequest(r) => {
            let pdu = &r.0;
            let names: Vec<&ObjectIdentifier> =
                pdu.variable_bindings.iter().map(|b| &b.name).collect();
            let split = (pdu.non_repeaters as usize).min(names.len());
            let mut out: Vec<VarBind> = names[..split]
                .iter()
                .map(|n| next_binding(tree, n))
                .collect();
            let mut cursors: Vec<ObjectIdentifier> =
                names[split..].iter().map(|n| (*n).clone()).collect();
            'rounds: for _ in 0..pdu.max_repetitions {
                if cursors.is_empty() {
                    break;
                }
                let mut all_ended = true;
                for cursor in cursors.iter_mut() {
                    if out.len() >= MAX_BINDINGS {
                        break 'rounds;
                    }
                    let b = next_binding(tree, cursor);
                    if b.value != VarBindValue::EndOfMibView {
                        all_ended = false;
                    }
                    *cursor = b.name.clone();
                    out.push(b);
                }
                if all_ended {
                    break;
                }
            }
            // Cut to what fits one datagram (an agent may return fewer repetitions).
            let mut bytes = answer(pdu.request_id, 0, 0, out.clone());
            while bytes.as_ref().is_some_and(|b| b.len() > MAX_ANSWER) && out.len() > split + 1 {
                out.truncate(split + (out.len() - split) / 2);
                bytes = answer(pdu.request_id, 0, 0, out.clone());
            }
            bytes
        }
        Pdus::SetRequest(r) => answer(
            r.0.request_id,
            Pdu::ERROR_STATUS_NOT_WRITABLE,
            1,
            r.0.variable_bindings.clone(),
        ),
        // Responses, traps, informs and reports are not requests to an agent.
        _ => return Outcome::Malformed,
    };
    match bytes {
        Some(b) if b.len() <= MAX_ANSWER => Outcome::Answer(b),
        // Too big for one datagram: `tooBig`, without bindings (RFC 3416 4.2.1).
        Some(_) => {
            let request_id = match &message.data {
                Pdus::GetRequest(r) => r.0.request_id,
                Pdus::GetNextRequest(r) => r.0.request_id,
                Pdus::GetBulkRequest(r) => r.0.request_id,
                Pdus::SetRequest(r) => r.0.request_id,
                _ => 0,
            };
            answer(request_id, Pdu::ERROR_STATUS_TOO_BIG, 0, Vec::new())
                .map_or(Outcome::Malformed, Outcome::Answer)
        }
        None => Outcome::Malformed,
    }
}

/// Counters of a running agent.
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Requests answered.
    pub answered: AtomicU64,
    /// Datagrams that were not SNMPv2c requests.
    pub malformed: AtomicU64,
    /// Requests with another community.
    pub wrong_community: AtomicU64,
}

/// Serve `socket` until `stop`: each request is answered from a fresh `snapshot()`.
pub fn serve(
    socket: UdpSocket,
    community: Vec<u8>,
    snapshot: impl Fn() -> Tree,
    stats: &AgentStats,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = vec![0u8; 65_535];
    while !stop.load(Ordering::Relaxed) {
        let (n, peer): (usize, SocketAddr) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        match handle(&buf[..n], &community, &snapshot) {
            Outcome::Answer(bytes) => {
                stats.answered.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = socket.send_to(&bytes, peer) {
                    tracing::debug!(%peer, error = %e, "SNMP answer not sent");
                }
            }
            Outcome::Malformed => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::WrongCommunity => {
                stats.wrong_community.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "SNMP request with another community dropped");
            }
        }
    }
    Ok(())
}

/// Start the agent on its own thread.
pub fn spawn(
    listen: SocketAddr,
    community: Vec<u8>,
    snapshot: impl Fn() -> Tree + Send + 'static,
    stats: Arc<AgentStats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let socket = UdpSocket::bind(listen)?;
    std::thread::Builder::new()
        .name("snmp-agent".into())
        .spawn(move || {
            if let Err(e) = serve(socket, community, snapshot, &stats, &stop) {
                tracing::error!(error = %e, "SNMP agent stopped");
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rasn_snmp::v2::{BulkPdu, GetBulkRequest, GetNextRequest, GetRequest};

    fn tree() -> Tree {
        let base = parse_oid("1.3.6.1.4.1.32473.1").expect("oid");
        let at = |n: u32| {
            let mut k = base.clone();
            k.extend([n, 0]);
            k
        };
        Tree::from([
            (at(1), Value::Text("0.1.0".into())),
            (at(3), Value::Integer(97)),
            (at(4), Value::Gauge(2)),
        ])
    }

    fn request(community: &str, data: Pdus) -> Vec<u8> {
        rasn::ber::encode(&Message {
            version: Integer::from(1),
            community: community.as_bytes().to_vec().into(),
            data,
        })
        .expect("encode")
    }

    fn pdu(names: &[&str]) -> Pdu {
        Pdu {
            request_id: 7,
            error_status: 0,
            error_index: 0,
            variable_bindings: names
                .iter()
                .map(|n| VarBind {
                    name: oid(&parse_oid(n).expect("oid")),
                    value: VarBindValue::Unspecified,
                })
                .collect(),
        }
    }

    fn answer(bytes: &[u8], community: &str) -> Pdu {
        match handle(bytes, community.as_bytes(), tree) {
            Outcome::Answer(b) => {
                match rasn::ber::decode::<Message<Pdus>>(&b).expect("decode").data {
                    Pdus::Response(Response(p)) => p,
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn get_getnext_and_getbulk_walk_the_tree() {
        let p = answer(
            &request(
                "c",
                Pdus::GetRequest(GetRequest(pdu(&[
                    "1.3.6.1.4.1.32473.1.3.0",
                    "1.3.6.1.4.1.32473.1.3",
                    "1.3.6.1.4.1.1",
                ]))),
            ),
            "c",
        );
        assert_eq!(p.request_id, 7);
        assert_eq!(
            p.variable_bindings[0].value,
            VarBindValue::Value(Value::Integer(97).syntax())
        );
        assert_eq!(p.variable_bindings[1].value, VarBindValue::NoSuchInstance);
        assert_eq!(p.variable_bindings[2].value, VarBindValue::NoSuchObject);
        let p = answer(
            &request(
                "c",
                Pdus::GetNextRequest(GetNextRequest(pdu(&[
                    "1.3.6.1.4.1.32473.1.3.0",
                    "1.3.6.1.4.1.32473.1.4.0",
                ]))),
            ),
            "c",
        );
        assert_eq!(
            &**p.variable_bindings[0].name,
            &parse_oid("1.3.6.1.4.1.32473.1.4.0").expect("oid")[..]
        );
        assert_eq!(p.variable_bindings[1].value, VarBindValue::EndOfMibView);
        let mut bulk = BulkPdu {
            request_id: 9,
            non_repeaters: 0,
            max_repetitions: 10,
            variable_bindings: pdu(&["1.3.6.1.4.1.32473"]).variable_bindings,
        };
        let p = answer(
            &request("c", Pdus::GetBulkRequest(GetBulkRequest(bulk.clone()))),
            "c",
        );
        assert_eq!(
            p.variable_bindings.len(),
            4,
            "three values, then the end of the view"
        );
        assert_eq!(p.variable_bindings[3].value, VarBindValue::EndOfMibView);
        bulk.max_repetitions = u32::MAX;
        bulk.variable_bindings = pdu(&["1.3"; 40]).variable_bindings;
        let p = answer(
            &request("c", Pdus::GetBulkRequest(GetBulkRequest(bulk))),
            "c",
        );
        assert!(p.variable_bindings.len() <= MAX_BINDINGS);
    }

    #[test]
    fn an_answer_too_big_for_a_datagram_is_too_big() {
        let names = vec!["1.3.6.1.4.1.32473.1.1.0"; 1000];
        let p = answer(
            &request("c", Pdus::GetRequest(GetRequest(pdu(&names)))),
            "c",
        );
        assert_eq!(p.error_status, Pdu::ERROR_STATUS_TOO_BIG);
        assert!(p.variable_bindings.is_empty());
    }

    #[test]
    fn the_tree_is_built_only_for_a_request_with_the_community() {
        let get = request(
            "public",
            Pdus::GetRequest(GetRequest(pdu(&["1.3.6.1.4.1.32473.1.3.0"]))),
        );
        let built = std::cell::Cell::new(false);
        let snapshot = || {
            built.set(true);
            tree()
        };
        assert_eq!(handle(&get, b"secret", snapshot), Outcome::WrongCommunity);
        assert_eq!(
            handle(b"garbage", b"public", || {
                built.set(true);
                tree()
            }),
            Outcome::Malformed
        );
        assert!(!built.get());
    }

    #[test]
    fn other_communities_garbage_and_writes_are_refused() {
        let get = request(
            "public",
            Pdus::GetRequest(GetRequest(pdu(&["1.3.6.1.4.1.32473.1.3.0"]))),
        );
        assert_eq!(handle(&get, b"secret", tree), Outcome::WrongCommunity);
        assert_eq!(handle(b"\x30\x03\x02\x01", b"c", tree), Outcome::Malformed);
        assert_eq!(handle(&[], b"c", tree), Outcome::Malformed);
        let set = request(
            "c",
            Pdus::SetRequest(rasn_snmp::v2::SetRequest(pdu(&["1.3.6.1.4.1.32473.1.3.0"]))),
        );
        assert_eq!(
            answer(&set, "c").error_status,
            Pdu::ERROR_STATUS_NOT_WRITABLE
        );
    }

    #[test]
    fn oids_are_checked() {
        assert!(parse_oid(".1.3.6.1").is_ok());
        for bad in ["", "1", "1.x", "5.1", "1..2"] {
            assert!(parse_oid(bad).is_err(), "{bad}");
        }
    }
}
