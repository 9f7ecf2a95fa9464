//! The fields of an object that one field manager owns, read from its `managedFields`
//! (`fieldsV1`), as client-go's `Extract…` functions do: the apply configuration that
//! manager would send to keep exactly what it has. Server-side apply replaces a manager's
//! whole set with each apply, so a write made *as* another manager must carry that set, or
//! it removes what it leaves out.
//!
//! `fieldsV1` is a trie: `f:<name>` a field of a map, `k:<json>` the item of an associative
//! list with those key fields, `v:<json>` an item of a set, `i:<n>` an item by index, and
//! `.` the node itself; an empty trie means the value whole (a leaf or an atomic value).

use serde_json::{Map, Value};

/// The `fieldsV1` of the entry of `object`'s `managedFields` written by `manager` with
/// `operation` (`Apply` or `Update`) on `subresource` (`""` for the main resource).
pub fn fields_of<'a>(
    object: &'a Value,
    manager: &str,
    operation: &str,
    subresource: &str,
) -> Option<&'a Value> {
    object
        .pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|entry| {
            entry["manager"] == manager
                && entry["operation"] == operation
                && entry["subresource"].as_str().unwrap_or_default() == subresource
        })
        .and_then(|entry| entry.get("fieldsV1"))
}

/// The part of `value` that the trie `fields` names.
pub fn extract(value: &Value, fields: &Value) -> Value {
    let Some(children) = fields.as_object().filter(|c| c.keys().any(|k| k != ".")) else {
        return value.clone();
    };
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, sub) in children {
                if let Some(name) = key.strip_prefix("f:")
                    && let Some(v) = map.get(name)
                {
                    out.insert(name.to_owned(), extract(v, sub));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            for (key, sub) in children {
                if let Some(json) = key.strip_prefix("k:") {
                    let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(json) else {
                        continue;
                    };
                    let matches = |item: &&Value| keys.iter().all(|(k, v)| item.get(k) == Some(v));
                    if let Some(item) = items.iter().find(matches) {
                        // The key fields identify the item: always part of it.
                        let mut part = extract(item, sub);
                        if let Value::Object(part) = &mut part {
                            for (k, v) in &keys {
                                part.insert(k.clone(), v.clone());
                            }
                        }
                        out.push(part);
                    }
                } else if let Some(json) = key.strip_prefix("v:") {
                    if let Ok(v) = serde_json::from_str::<Value>(json)
                        && items.contains(&v)
                    {
                        out.push(v);
                    }
                } else if let Some(index) = key.strip_prefix("i:")
                    && let Some(item) = index.parse::<usize>().ok().and_then(|i| items.get(i))
                {
                    out.push(extract(item, sub));
                }
            }
            Value::Array(out)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workload() -> Value {
        json!({
            "metadata": {
                "name": "w",
                "managedFields": [
                    {"manager": "kueue-admission", "operation": "Apply", "subresource": "status",
                     "fieldsV1": {"f:status": {
                        "f:admission": {"f:clusterQueue": {}, "f:podSetAssignments": {}},
                        "f:conditions": {"k:{\"type\":\"QuotaReserved\"}": {
                            ".": {}, "f:message": {}, "f:reason": {}, "f:status": {}, "f:type": {}}},
                        "f:admissionChecks": {"k:{\"name\":\"multikueue\"}": {".": {}, "f:name": {}, "f:state": {}}},
                        "f:clusterName": {},
                        "f:tags": {"v:\"a\"": {}},
                     }}},
                    {"manager": "kueue", "operation": "Update", "subresource": "status",
                     "fieldsV1": {"f:status": {"f:conditions": {"k:{\"type\":\"Finished\"}": {}}}}},
                ],
            },
            "spec": {"queueName": "team"},
            "status": {
                "admission": {"clusterQueue": "gpus", "podSetAssignments": [{"name": "workers", "count": 1}]},
                "conditions": [
                    {"type": "Finished", "status": "False", "reason": "x"},
                    {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved", "message": "m",
                     "lastTransitionTime": "t"},
                ],
                "admissionChecks": [{"name": "multikueue", "state": "Pending", "message": "hello"}],
                "tags": ["a", "b"],
                "requeueState": {"count": 2},
            },
        })
    }

    #[test]
    fn a_managers_fields_are_extracted_and_nothing_else() {
        let wl = workload();
        let fields = fields_of(&wl, "kueue-admission", "Apply", "status").unwrap();
        let owned = extract(&wl, fields);
        assert_eq!(
            owned,
            json!({"status": {
                "admission": {"clusterQueue": "gpus", "podSetAssignments": [{"name": "workers", "count": 1}]},
                "conditions": [{"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved", "message": "m"}],
                "admissionChecks": [{"name": "multikueue", "state": "Pending"}],
                "tags": ["a"],
            }})
        );
    }

    #[test]
    fn entries_are_told_apart_by_manager_operation_and_subresource() {
        let wl = workload();
        assert!(fields_of(&wl, "kueue-admission", "Update", "status").is_none());
        assert!(fields_of(&wl, "kueue-admission", "Apply", "").is_none());
        let kueue = fields_of(&wl, "kueue", "Update", "status").unwrap();
        assert_eq!(
            extract(&wl, kueue),
            json!({"status": {"conditions": [{"type": "Finished", "status": "False", "reason": "x"}]}})
        );
        assert!(fields_of(&json!({}), "kueue", "Update", "status").is_none());
    }

    #[test]
    fn a_key_that_no_item_has_any_more_is_left_out() {
        let mut wl = workload();
        wl["status"]["conditions"] = json!([]);
        let fields = fields_of(&wl, "kueue-admission", "Apply", "status")
            .unwrap()
            .clone();
        assert_eq!(extract(&wl, &fields)["status"]["conditions"], json!([]));
        // Malformed keys are skipped, not a panic.
        let odd = json!({"f:status": {"f:conditions": {"k:not json": {}, "i:x": {}, "i:9": {}}}});
        assert_eq!(
            extract(&workload(), &odd)["status"]["conditions"],
            json!([])
        );
    }
}
