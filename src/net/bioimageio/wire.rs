//! Protocol buffers at the wire level: a message as its list of (field number, raw field bytes). Imported ONNX
//! files are edited this way so that every field unet's own minimal ONNX schema does not know (attributes of
//! other types, opsets, doc strings, subgraphs) passes through byte for byte.

use crate::error::{Error, Result, UnetStatus};

/// One field of a message: its number and its whole encoding (key included), ready to be written back.
#[derive(Clone, Debug)]
pub struct Field<'a> {
    pub number: u64,
    /// The payload of a length-delimited field (submessage, string, bytes); empty for the other wire types.
    pub payload: &'a [u8],
    pub encoded: &'a [u8],
}

fn invalid(what: &str) -> Error {
    Error::new(UnetStatus::ModelInvalid, format!("not a valid ONNX model: {what}"))
}

fn varint(bytes: &[u8], at: &mut usize) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or_else(|| invalid("truncated varint"))?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(invalid("varint longer than 10 bytes"))
}

/// Splits a message into its fields, in file order.
pub fn fields(bytes: &[u8]) -> Result<Vec<Field<'_>>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let key = varint(bytes, &mut at)?;
        let (number, wire_type) = (key >> 3, key & 7);
        let mut payload: &[u8] = &[];
        match wire_type {
            0 => {
                varint(bytes, &mut at)?;
            }
            1 => at += 8,
            5 => at += 4,
            2 => {
                let len = usize::try_from(varint(bytes, &mut at)?).map_err(|_| invalid("field length"))?;
                let end =
                    at.checked_add(len).filter(|&e| e <= bytes.len()).ok_or_else(|| invalid("truncated field"))?;
                payload = &bytes[at..end];
                at = end;
            }
            _ => return Err(invalid(&format!("wire type {wire_type} of field {number}"))),
        }
        if at > bytes.len() || number == 0 {
            return Err(invalid("truncated field"));
        }
        out.push(Field { number, payload, encoded: &bytes[start..at] });
    }
    Ok(out)
}

/// Appends a length-delimited field.
pub fn put_message(out: &mut Vec<u8>, number: u64, payload: &[u8]) {
    put_varint(out, number << 3 | 2);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_truncation_is_an_error() {
        let mut msg = Vec::new();
        put_message(&mut msg, 7, b"graph");
        msg.extend_from_slice(&[0x08, 0x96, 0x01]); // field 1, varint 150
        msg.extend_from_slice(&[0x0d, 1, 2, 3, 4]); // field 1, fixed32
        put_message(&mut msg, 300, b"");
        let f = fields(&msg).unwrap();
        assert_eq!(f.iter().map(|f| f.number).collect::<Vec<_>>(), vec![7, 1, 1, 300]);
        assert_eq!(f[0].payload, b"graph");
        assert_eq!(f.iter().flat_map(|f| f.encoded.iter().copied()).collect::<Vec<_>>(), msg);
        for cut in 1..msg.len() {
            if let Ok(parts) = fields(&msg[..cut]) {
                // A cut may fall between fields; then what is left must be whole fields.
                assert_eq!(parts.iter().map(|f| f.encoded.len()).sum::<usize>(), cut);
            }
        }
        assert!(fields(&[0x0f]).is_err(), "wire type 7");
    }
}
