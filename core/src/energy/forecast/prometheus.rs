//! A Prometheus instant-query answer (`GET /api/v1/query`) into the site's renewable
//! output now, in kW.
//!
//! The query must return one number: a scalar, or a vector with exactly one series
//! (aggregate with `sum(...)` otherwise). An empty result, several series, `NaN`, `±Inf`
//! or a negative value is refused with a message that says which, so a broken exporter
//! never reads as "0 kW" or as an optimistic number. Prometheus's own error envelope
//! (`"status": "error"`) is [`ForecastParseError::Rejected`].

use serde_json::Value;

use super::{ForecastParseError, excerpt};

/// A measured site output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    /// Total renewable output, kW.
    pub total_kw: f64,
    /// When it was measured (Unix s).
    pub at_s: i64,
}

/// Parses an instant-query answer. `now_s` stands in for a sample without a usable
/// timestamp.
pub fn parse(body: &str, source: &str, now_s: i64) -> Result<Measured, ForecastParseError> {
    let bad = |detail: String| ForecastParseError::Malformed(format!("{source}: {detail}"));
    let json: Value = serde_json::from_str(body)
        .map_err(|e| bad(format!("the answer is not JSON ({e}): {}", excerpt(body))))?;
    match json.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some("error") => {
            let kind = json
                .get("errorType")
                .and_then(Value::as_str)
                .unwrap_or("error");
            let error = json
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            return Err(ForecastParseError::Rejected(format!(
                "{source}: {kind}: {error}"
            )));
        }
        _ => return Err(bad("the answer has no \"status\": \"success\"".to_owned())),
    }
    let data = json
        .get("data")
        .ok_or_else(|| bad("the answer has no `data`".to_owned()))?;
    let result_type = data.get("resultType").and_then(Value::as_str).unwrap_or("");
    let result = data
        .get("result")
        .ok_or_else(|| bad("the answer has no `data.result`".to_owned()))?;
    let sample = match result_type {
        "scalar" => result,
        "vector" => {
            let series = result
                .as_array()
                .ok_or_else(|| bad("data.result is not an array".to_owned()))?;
            match series.as_slice() {
                [] => {
                    return Err(bad(
                        "the query returned no series (is the exporter up, and the query right?)"
                            .to_owned(),
                    ));
                }
                [one] => one
                    .get("value")
                    .ok_or_else(|| bad("data.result[0] has no `value`".to_owned()))?,
                many => {
                    return Err(bad(format!(
                        "the query returned {} series; it must return one number (wrap it in sum(...))",
                        many.len()
                    )));
                }
            }
        }
        other => {
            return Err(bad(format!(
                "resultType {other:?}: an instant query returning a scalar or one series is needed"
            )));
        }
    };
    let (at, value) = match sample.as_array().map(Vec::as_slice) {
        Some([at, Value::String(value)]) => (at, value.as_str()),
        _ => {
            return Err(bad(format!(
                "sample {sample} is not [timestamp, \"value\"]"
            )));
        }
    };
    let total_kw: f64 = value
        .parse()
        .map_err(|_| bad(format!("value {value:?} is not a number")))?;
    if !total_kw.is_finite() {
        return Err(bad(format!(
            "the measured output is {value}; the exporter has no valid reading"
        )));
    }
    if total_kw < 0.0 {
        return Err(bad(format!(
            "the measured output is {total_kw} kW; renewable output cannot be negative"
        )));
    }
    let at_s = at
        .as_f64()
        .filter(|t| t.is_finite())
        .map_or(now_s, |t| t as i64);
    // Ages are computed from it (now − at): beyond the years jiff knows (−9999 to 9999) it
    // would overflow.
    if jiff::Timestamp::from_second(at_s).is_err() {
        return Err(bad(format!("sample timestamp {at} is not a Unix time")));
    }
    Ok(Measured { total_kw, at_s })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vectors_and_scalars() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"site":"a"},"value":[1795910400.123,"812.5"]}]}}"#;
        assert_eq!(
            parse(vector, "q", 0).unwrap(),
            Measured {
                total_kw: 812.5,
                at_s: 1_795_910_400
            }
        );
        let scalar =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1795910400,"3"]}}"#;
        assert_eq!(parse(scalar, "q", 0).unwrap().total_kw, 3.0);
    }

    #[test]
    fn refuses_what_is_not_one_good_number() {
        let cases = [
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
                "no series",
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]},{"metric":{},"value":[1,"2"]}]}}"#,
                "returned 2 series",
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#,
                "is NaN",
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"-4"]}]}}"#,
                "cannot be negative",
            ),
            (
                r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
                "resultType \"matrix\"",
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,4]}]}}"#,
                "is not [timestamp",
            ),
            ("upstream connect error", "not JSON"),
        ];
        for (body, expected) in cases {
            let err = parse(body, "Prometheus query", 0).unwrap_err();
            assert!(matches!(err, ForecastParseError::Malformed(_)), "{err:?}");
            assert!(err.to_string().contains(expected), "{err} lacks {expected}");
        }
        let error = r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}"#;
        let err = parse(error, "q", 0).unwrap_err();
        assert_eq!(
            err,
            ForecastParseError::Rejected(
                "q: bad_data: 1:5: parse error: unexpected end of input".into()
            )
        );
    }

    /// Found while writing the `prometheus` fuzz target: a timestamp far out of range
    /// saturated to i64::MIN/MAX, and the site's freshness check (now − at) overflowed.
    #[test]
    fn timestamps_out_of_range_are_refused() {
        for at in ["1e300", "-1e300", "9223372036854775807"] {
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"scalar","result":[{at},"3"]}}}}"#
            );
            let error = parse(&body, "test", 0).unwrap_err().to_string();
            assert!(error.contains("is not a Unix time"), "{at}: {error}");
        }
    }
}
