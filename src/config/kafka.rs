//! librdkafka properties: logferry's producer defaults, conflicts among
//! the user's properties, and which ones are secrets.

/// Producer properties logferry sets unless the user overrides them.
/// acks=all + idempotence: no loss and no reordering on retries.
/// message.timeout.ms=0: never give up on a message (librdkafka's default
/// of 300 s drops lines during a long outage); the in-flight bound pauses
/// reading instead.
pub const DEFAULT_PRODUCER_PROPS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("compression.type", "lz4"),
    ("linger.ms", "20"),
    ("batch.size", "1000000"),
    ("message.timeout.ms", "0"),
    ("queue.buffering.max.kbytes", "65536"),
    ("socket.keepalive.enable", "true"),
    ("reconnect.backoff.max.ms", "5000"),
    // A hung broker (alive to TCP, answering nothing) holds every request
    // sent to it until these expire; librdkafka's 60 s and 30 s defaults
    // stopped shipping for 49 s while the partition leaders had moved
    // within 6 s. With 10 s, the stall is bounded by about that (see
    // tests/faults.rs, hung_leader_stalls_shipping_only_briefly).
    ("socket.timeout.ms", "10000"),
    ("request.timeout.ms", "10000"),
];

// ---------------------------------------------------------------------------
// librdkafka properties: conflicts and secrets
// ---------------------------------------------------------------------------

/// A conflict (or, with `warning`, a risk) among producer properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyConflict {
    /// The user's key the message is attached to.
    pub key: String,
    pub message: String,
    pub warning: bool,
}

/// Two names librdkafka treats as the same property.
pub(crate) const ALIASES: &[(&str, &str)] = &[
    ("acks", "request.required.acks"),
    ("linger.ms", "queue.buffering.max.ms"),
    ("retries", "message.send.max.retries"),
    ("max.in.flight", "max.in.flight.requests.per.connection"),
    ("compression.type", "compression.codec"),
    ("message.timeout.ms", "delivery.timeout.ms"),
];

/// Check user properties (layered over logferry's producer defaults) for
/// combinations librdkafka would refuse at start, or that break the no-loss
/// promise. Each conflict names both keys.
pub fn property_conflicts(user: &[(String, String)]) -> Vec<PropertyConflict> {
    let mut out = Vec::new();
    let set_by_user = |k: &str| {
        user.iter()
            .rev()
            .find(|(uk, _)| uk == k)
            .map(|(_, v)| v.as_str())
    };
    for (a, b) in ALIASES {
        if set_by_user(a).is_some() && set_by_user(b).is_some() {
            out.push(PropertyConflict {
                key: b.to_string(),
                message: format!("kafka.properties \"{a}\" and \"{b}\" are the same librdkafka property; set only one"),
                warning: false,
            });
        }
    }
    // The effective value of a property (by any of its names) and where it
    // came from, for the messages.
    let effective = |names: &[&str]| -> Option<(String, String, bool)> {
        for n in names {
            if let Some(v) = set_by_user(n) {
                return Some((n.to_string(), v.to_string(), true));
            }
        }
        for n in names {
            if let Some((_, v)) = DEFAULT_PRODUCER_PROPS.iter().find(|(k, _)| k == n) {
                return Some((n.to_string(), v.to_string(), false));
            }
        }
        None
    };
    let origin = |user: bool| if user { "" } else { " (logferry's default)" };
    let truthy = |v: &str| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "true" | "1" | "t" | "yes" | "on"
        )
    };
    let idem = effective(&["enable.idempotence"]);
    let idem_on = idem.as_ref().is_some_and(|(_, v, _)| truthy(v));
    let acks = effective(&["acks", "request.required.acks"]);
    let acks_all = acks
        .as_ref()
        .is_none_or(|(_, v, _)| matches!(v.trim().to_ascii_lowercase().as_str(), "all" | "-1"));
    if let (true, Some((ik, iv, iu)), Some((ak, av, au))) = (idem_on, &idem, &acks) {
        if !acks_all {
            out.push(PropertyConflict {
                key: if *au { ak.clone() } else { ik.clone() },
                message: format!(
                    "kafka.properties \"{ik}\" = \"{iv}\"{} conflicts with \"{ak}\" = \"{av}\"{}: idempotence needs acks = \"all\" (or -1); set \"{ik}\" = false to use {ak} = {av}",
                    origin(*iu),
                    origin(*au)
                ),
                warning: false,
            });
        }
    }
    if idem_on {
        let (ik, iv, iu) = idem.clone().expect("idempotence is set");
        if let Some((k, v, true)) =
            effective(&["max.in.flight.requests.per.connection", "max.in.flight"])
        {
            if v.trim().parse::<u64>().is_ok_and(|n| n > 5) {
                out.push(PropertyConflict {
                    key: k.clone(),
                    message: format!(
                        "kafka.properties \"{k}\" = \"{v}\" conflicts with \"{ik}\" = \"{iv}\"{}: idempotence allows at most 5",
                        origin(iu)
                    ),
                    warning: false,
                });
            }
        }
        if let Some((k, v, true)) = effective(&["retries", "message.send.max.retries"]) {
            if v.trim() == "0" {
                out.push(PropertyConflict {
                    key: k.clone(),
                    message: format!(
                        "kafka.properties \"{k}\" = \"0\" conflicts with \"{ik}\" = \"{iv}\"{}: idempotence needs retries",
                        origin(iu)
                    ),
                    warning: false,
                });
            }
        }
    } else if let Some((k, v, true)) = effective(&["enable.gapless.guarantee"]) {
        if truthy(&v) {
            let (ik, iv, _) =
                idem.clone()
                    .unwrap_or(("enable.idempotence".into(), "false".into(), true));
            out.push(PropertyConflict {
                key: k.clone(),
                message: format!(
                    "kafka.properties \"{k}\" = \"{v}\" needs \"{ik}\" = true (it is \"{iv}\")"
                ),
                warning: false,
            });
        }
    }
    if !acks_all {
        if let Some((ak, av, true)) = &acks {
            out.push(PropertyConflict {
                key: ak.clone(),
                message: format!(
                    "kafka.properties \"{ak}\" = \"{av}\": lines acknowledged by one broker can be lost when it fails; logferry's no-loss promise needs acks = \"all\""
                ),
                warning: true,
            });
        }
    }
    out
}

/// Properties whose values must never be printed: passwords, secrets, JAAS
/// configs, tokens and private key material.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "token",
        "credential",
        "private",
        "oauthbearer.config",
    ]
    .iter()
    .any(|w| k.contains(w))
        || k.split(['.', '_']).any(|part| part == "key")
}

/// `value`, or `***` when the property is a secret.
pub fn shown_value<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret(key) {
        "***"
    } else {
        value
    }
}
