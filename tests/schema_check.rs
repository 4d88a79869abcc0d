//! A small checker of JSON values against the schemas of the service's OpenAPI document, so
//! the tests can hold every answer against what the document promises for its route and
//! status. It is stricter than JSON Schema on purpose: an object may carry only the
//! properties its schema declares (unless it declares `additionalProperties`), so a field the
//! server sends but the document omits is caught as surely as a missing required one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use serde_json::{Map, Value};

/// The OpenAPI document, as served.
pub struct Document(pub Value);

/// An object schema with its `allOf` parts and references merged.
#[derive(Default)]
struct ObjectShape {
    properties: Map<String, Value>,
    required: Vec<String>,
    additional: Option<Value>,
}

impl Document {
    /// The operation for `method` (lowercase) at the path `template`.
    pub fn operation(&self, method: &str, template: &str) -> &Value {
        let operation = &self.0["paths"][template][method];
        assert!(
            operation.is_object(),
            "the document has no {method} {template}"
        );
        operation
    }

    /// The documented response of `method template` with `status`.
    pub fn response(&self, method: &str, template: &str, status: u16) -> &Value {
        let response = &self.operation(method, template)["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{method} {template} answered {status}, which the document does not list"
        );
        response
    }

    /// The schema of a JSON answer of `method template` with `status`.
    pub fn json_schema(&self, method: &str, template: &str, status: u16) -> &Value {
        let schema =
            &self.response(method, template, status)["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "{method} {template} {status} has no JSON schema in the document"
        );
        schema
    }

    /// Every way `value` breaks `schema`, each with the JSON pointer where it does.
    pub fn violations(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut found = Vec::new();
        self.check(schema, value, "", &mut found);
        found
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("unsupported reference {reference}"));
                let target = &self.0["components"]["schemas"][name];
                assert!(target.is_object(), "{reference} does not resolve");
                self.resolve(target)
            }
            None => schema,
        }
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, found: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
            let matching = variants
                .iter()
                .filter(|variant| self.violations(variant, value).is_empty())
                .count();
            if matching != 1 {
                found.push(format!(
                    "{at}: matches {matching} of the {} oneOf variants",
                    variants.len()
                ));
            }
            return;
        }
        if let Some(variants) = schema.get("anyOf").and_then(Value::as_array) {
            if variants
                .iter()
                .all(|variant| !self.violations(variant, value).is_empty())
            {
                found.push(format!("{at}: matches none of the anyOf variants"));
            }
            return;
        }
        if let Some(types) = schema.get("type") {
            let allowed: Vec<&str> = match types {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                other => panic!("unexpected type {other}"),
            };
            if !allowed.iter().any(|kind| has_type(value, kind)) {
                found.push(format!("{at}: {value} is not of type {allowed:?}"));
                return;
            }
        }
        if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
            if !choices.contains(value) {
                found.push(format!("{at}: {value} is not one of {choices:?}"));
            }
        }
        match value {
            Value::Object(fields) if is_object_schema(schema) => {
                self.check_object(schema, fields, at, found);
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (index, item) in items.iter().enumerate() {
                        self.check(item_schema, item, &format!("{at}/{index}"), found);
                    }
                }
            }
            _ => {}
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        fields: &Map<String, Value>,
        at: &str,
        found: &mut Vec<String>,
    ) {
        let shape = self.object_shape(schema);
        for name in &shape.required {
            if !fields.contains_key(name) {
                found.push(format!("{at}: the required property {name} is missing"));
            }
        }
        for (name, field) in fields {
            let place = format!("{at}/{name}");
            match (shape.properties.get(name), &shape.additional) {
                (Some(property), _) => self.check(property, field, &place, found),
                (None, Some(Value::Bool(true))) => {}
                (None, Some(additional @ Value::Object(_))) => {
                    self.check(additional, field, &place, found);
                }
                (None, _) => found.push(format!("{place}: a property the schema does not declare")),
            }
        }
    }

    /// The properties, required names and additional properties of an object schema,
    /// through its references and `allOf` parts.
    fn object_shape(&self, schema: &Value) -> ObjectShape {
        let schema = self.resolve(schema);
        let mut shape = ObjectShape::default();
        for part in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let inner = self.object_shape(part);
            shape.properties.extend(inner.properties);
            shape.required.extend(inner.required);
            shape.additional = shape.additional.or(inner.additional);
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            shape.properties.extend(properties.clone());
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            shape
                .required
                .extend(required.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        if let Some(additional) = schema.get("additionalProperties") {
            shape.additional = Some(additional.clone());
        }
        shape
    }
}

/// A schema that says which properties an object has; a bare `{"type": "object"}` is any
/// object (the document itself is served as one).
fn is_object_schema(schema: &Value) -> bool {
    schema.get("properties").is_some()
        || schema.get("allOf").is_some()
        || schema.get("required").is_some()
        || schema.get("additionalProperties").is_some()
}

fn has_type(value: &Value, kind: &str) -> bool {
    match kind {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => panic!("unknown JSON type {other}"),
    }
}
