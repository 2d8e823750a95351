//! The Redis callout convention, both ways: a JSON array of arguments in,
//! the reply as JSON out (see docs/abi.md, "Redis clusters").

use base64::Engine as _;
use redis::Value;
use serde_json::{json, Value as Json};

/// Most arguments one command may carry.
const MAX_ARGS: usize = 1024;

/// A command from a callout body: `["INCRBY", "hits", 1]`. Strings and
/// numbers are arguments; `{"base64": "..."}` is a binary argument.
pub fn parse_command(body: &[u8]) -> Result<redis::Cmd, String> {
    let args: Vec<Json> = serde_json::from_slice(body)
        .map_err(|e| format!("the body must be a JSON array of arguments: {e}"))?;
    let Some(Json::String(name)) = args.first() else {
        return Err("the first element must be the command name, a string".into());
    };
    if args.len() > MAX_ARGS {
        return Err(format!("more than {MAX_ARGS} arguments"));
    }
    let mut cmd = redis::cmd(name);
    for (i, arg) in args.iter().enumerate().skip(1) {
        match arg {
            Json::String(s) => cmd.arg(s.as_bytes()),
            Json::Number(n) => cmd.arg(n.to_string()),
            Json::Object(o) => match o
                .get("base64")
                .and_then(Json::as_str)
                .map(|b| base64::engine::general_purpose::STANDARD.decode(b))
            {
                Some(Ok(bytes)) => cmd.arg(bytes),
                _ => {
                    return Err(format!(
                        "argument {i}: an object must be {{\"base64\": \"...\"}}"
                    ))
                }
            },
            _ => return Err(format!("argument {i}: expected a string or a number")),
        };
    }
    Ok(cmd)
}

/// A reply as JSON: nil is `null`, integers and doubles numbers, strings
/// strings (bytes that are not UTF-8 become `{"base64": "..."}`), arrays
/// and sets arrays, maps objects (non-string keys: arrays of pairs).
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Int(i) => json!(i),
        Value::Double(d) => json!(d),
        Value::Boolean(b) => json!(b),
        Value::Okay => json!("OK"),
        Value::SimpleString(s) => json!(s),
        Value::BulkString(bytes) => bytes_json(bytes),
        Value::VerbatimString { text, .. } => json!(text),
        Value::Array(items) | Value::Set(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(pairs) => map_json(pairs),
        Value::Attribute { data, .. } => to_json(data),
        Value::ServerError(e) => json!({ "error": e.to_string() }),
        other => json!(format!("{other:?}")),
    }
}

fn bytes_json(bytes: &[u8]) -> Json {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!(text),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) }),
    }
}

fn map_json(pairs: &[(Value, Value)]) -> Json {
    let keys: Option<Vec<String>> = pairs
        .iter()
        .map(|(k, _)| match to_json(k) {
            Json::String(s) => Some(s),
            _ => None,
        })
        .collect();
    match keys {
        Some(keys) => Json::Object(
            keys.into_iter()
                .zip(pairs.iter().map(|(_, v)| to_json(v)))
                .collect(),
        ),
        None => Json::Array(
            pairs
                .iter()
                .map(|(k, v)| json!([to_json(k), to_json(v)]))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_take_strings_numbers_and_binary() {
        let cmd = parse_command(br#"["SET", "k", 12, {"base64": "AP8="}]"#).expect("a command");
        assert_eq!(
            cmd.get_packed_command(),
            b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$2\r\n\x00\xff\r\n"
        );
    }

    #[test]
    fn bad_commands_say_why() {
        assert!(parse_command(b"GET k")
            .expect_err("rejected")
            .contains("JSON array"));
        assert!(parse_command(b"[]")
            .expect_err("rejected")
            .contains("command name"));
        assert!(parse_command(br#"["GET", true]"#)
            .expect_err("rejected")
            .contains("argument 1"));
    }

    #[test]
    fn replies_become_json() {
        let reply = Value::Array(vec![
            Value::Int(3),
            Value::Nil,
            Value::BulkString(b"hi".to_vec()),
            Value::BulkString(vec![0xff]),
            Value::Okay,
        ]);
        assert_eq!(
            to_json(&reply),
            json!([3, null, "hi", {"base64": "/w=="}, "OK"])
        );
        let map = Value::Map(vec![(Value::SimpleString("a".into()), Value::Int(1))]);
        assert_eq!(to_json(&map), json!({"a": 1}));
    }
}
