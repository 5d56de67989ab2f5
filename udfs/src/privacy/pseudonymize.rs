//! `pseudonymize(id, key_name [, format])`: a keyed pseudonym of an id — HMAC-SHA256 (RFC 2104)
//! of the id's text under a secret key — so exports join among themselves on the pseudonym
//! while the raw id stays with whoever holds the key (pseudonymisation in the sense of GDPR
//! Art. 4(5)).
//!
//! The key never appears in SQL: the call names it, and the key itself comes from the
//! environment variable `RECFUSION_KEY_<NAME>`, or from the file `RECFUSION_KEY_<NAME>_FILE`
//! names. Errors name the variable, never its value.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::vector::to_columnar;

const NAME: &str = "pseudonymize";

/// The shortest key accepted: 128 bits, as NIST SP 800-107 asks of an HMAC key.
const MIN_KEY_BYTES: usize = 16;

#[user_doc(
    doc_section(label = "Privacy Functions"),
    description = "A keyed pseudonym of an id: HMAC-SHA256 of the id's text (integers in decimal, so 42 and '42' agree) under the secret key named key_name, as a non-negative 64-bit integer (the first 63 bits of the HMAC) or, with format 'hex', the whole HMAC as 64 hex digits. The same key gives the same pseudonym on every run and machine; without the key it cannot be reversed or recomputed. The key is read from the environment variable RECFUSION_KEY_<KEY_NAME> (or the file named by RECFUSION_KEY_<KEY_NAME>_FILE), at least 16 bytes; it is never written in SQL. NULL ids give NULL.",
    syntax_example = "pseudonymize(id, key_name [, format => 'int' | 'hex'])",
    sql_example = r#"```sql
> SELECT pseudonymize(user_id, 'export') AS user_key, item_id, score FROM recs;
```"#,
    argument(name = "id", description = "The id: an integer or a text."),
    argument(
        name = "key_name",
        description = "The key's name, a text literal of letters, digits and underscores: 'export' reads RECFUSION_KEY_EXPORT."
    ),
    argument(
        name = "format",
        description = "Optional: 'int' (default) for a BIGINT pseudonym, 'hex' for the full 256-bit HMAC as text."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Pseudonymize {
    signature: Signature,
}

impl Default for Pseudonymize {
    fn default() -> Self {
        Self::new()
    }
}

impl Pseudonymize {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Stable),
        }
    }
}

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The environment variable that holds the key named `key_name`.
pub fn key_variable(key_name: &str) -> String {
    format!("RECFUSION_KEY_{}", key_name.to_uppercase())
}

/// The key named `key_name`, from its environment variable or the file its `_FILE` variable
/// names (one trailing newline dropped, as `echo` writes it).
pub fn read_key(function: &str, key_name: &str) -> Result<Vec<u8>> {
    let variable = key_variable(key_name);
    let file_variable = format!("{variable}_FILE");
    let key = match (std::env::var_os(&variable), std::env::var_os(&file_variable)) {
        (Some(key), _) => key.into_encoded_bytes(),
        (None, Some(path)) => {
            let mut key = std::fs::read(&path).map_err(|e| {
                datafusion::common::DataFusionError::Execution(format!(
                    "{function}: cannot read the key file that {file_variable} names ('{}'): {e}",
                    std::path::Path::new(&path).display()
                ))
            })?;
            if key.ends_with(b"\n") {
                key.pop();
                if key.ends_with(b"\r") {
                    key.pop();
                }
            }
            key
        }
        (None, None) => {
            return exec_err!(
                "{function}: no key named '{key_name}': set the environment variable {variable} to the key, or {file_variable} to a file that holds it"
            );
        }
    };
    if key.len() < MIN_KEY_BYTES {
        return exec_err!(
            "{function}: the key in {variable} is too short: {} bytes, and a key must have at least {MIN_KEY_BYTES}",
            key.len()
        );
    }
    Ok(key)
}

fn text_literal(value: Option<&ScalarValue>) -> Option<&str> {
    match value? {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => Some(s),
        _ => None,
    }
}

/// Whether the call asks for hex text (`format => 'hex'`) rather than an integer.
fn wants_hex(format: Option<&ScalarValue>, given: bool) -> Result<bool> {
    if !given {
        return Ok(false);
    }
    match text_literal(format).map(str::to_ascii_lowercase).as_deref() {
        Some("int") => Ok(false),
        Some("hex") => Ok(true),
        _ => plan_err!("{NAME}: argument 3 (format) must be 'int' or 'hex'"),
    }
}

fn check_key_name(key_name: Option<&ScalarValue>) -> Result<&str> {
    match text_literal(key_name) {
        Some(name) if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Ok(name),
        Some(_) => plan_err!(
            "{NAME}: argument 2 (key_name) must be a name of letters, digits and underscores, e.g. 'export' for RECFUSION_KEY_EXPORT"
        ),
        None => plan_err!(
            "{NAME}: argument 2 (key_name) must be a text literal naming the key, e.g. 'export' for RECFUSION_KEY_EXPORT"
        ),
    }
}

impl ScalarUDFImpl for Pseudonymize {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if !(2..=3).contains(&arg_types.len()) {
            return plan_err!(
                "{NAME}: expected 2 or 3 arguments (id, key_name [, format]), got {}",
                arg_types.len()
            );
        }
        let id = &arg_types[0];
        if !(id.is_integer() || id.is_null() || matches!(id, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View))
        {
            return plan_err!("{NAME}: argument 1 (id) must be an integer or a text, got {id}");
        }
        Ok(std::iter::once(DataType::Utf8)
            .chain(arg_types[1..].iter().cloned())
            .collect())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        check_key_name(args.scalar_arguments.get(1).copied().flatten())?;
        let hex = wants_hex(
            args.scalar_arguments.get(2).copied().flatten(),
            args.arg_fields.len() == 3,
        )?;
        let data_type = if hex { DataType::Utf8 } else { DataType::Int64 };
        Ok(Arc::new(Field::new(NAME, data_type, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let literal = |position: usize| match args.args.get(position) {
            Some(ColumnarValue::Scalar(value)) => Some(value),
            _ => None,
        };
        let key_name = check_key_name(literal(1))?;
        let hex = args.return_field.data_type() == &DataType::Utf8;
        let key = read_key(NAME, key_name)?;
        let all_scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let ids = args.args[0].to_array(args.number_rows)?;
        let ids = cast(&ids, &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let macs = (0..ids.len()).map(|row| ids.is_valid(row).then(|| hmac_sha256(&key, ids.value(row).as_bytes())));
        let result: ArrayRef = if hex {
            Arc::new(
                macs.map(|mac| mac.map(|m| m.iter().map(|b| format!("{b:02x}")).collect::<String>()))
                    .collect::<StringArray>(),
            )
        } else {
            Arc::new(
                macs.map(|mac| mac.map(|m| (u64::from_be_bytes(m[..8].try_into().expect("8 bytes")) >> 1) as i64))
                    .collect::<Int64Array>(),
            )
        };
        to_columnar(result, all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The HMAC-SHA-256 test cases of RFC 4231 (case 5, a truncated output, does not apply).
    #[test]
    fn rfc_4231_test_vectors() {
        let long_key = [0xaa; 131];
        let cases: [(u32, &[u8], &[u8], &str); 6] = [
            (
                1,
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                2,
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                3,
                &[0xaa; 20],
                &[0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                4,
                &[
                    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
                    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
                ],
                &[0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                6,
                &long_key,
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                7,
                &long_key,
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (case, key, message, expected) in cases {
            assert_eq!(hex(&hmac_sha256(key, message)), expected, "RFC 4231 case {case}");
        }
    }
}
