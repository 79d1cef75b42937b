//! Just enough of the protobuf wire format for the messages containerd
//! exchanges that no generated type here covers (BootstrapParams and its
//! result, runtimeoptions).

/// The length-delimited fields of a message, (field number, bytes), in
/// order; other wire types are skipped. `None` if it is not protobuf.
pub fn length_delimited(mut b: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        match key & 7 {
            0 => {
                varint(&mut b)?;
            }
            1 => b = b.get(8..)?,
            5 => b = b.get(4..)?,
            2 => {
                let len = usize::try_from(varint(&mut b)?).ok()?;
                let (v, rest) = (b.get(..len)?, b.get(len..)?);
                out.push((key >> 3, v));
                b = rest;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The last value of string field `n` (protobuf: the last one wins).
pub fn string_field(fields: &[(u64, &[u8])], n: u64) -> String {
    fields.iter().rev().find(|(f, _)| *f == n).map(|(_, v)| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

/// Appends string field `n` (wire type 2: key, varint length, bytes).
pub fn put_string(out: &mut Vec<u8>, n: u64, s: &str) {
    put_bytes(out, n, s.as_bytes());
}

/// Appends length-delimited field `n`: bytes, or an encoded message.
pub fn put_bytes(out: &mut Vec<u8>, n: u64, bytes: &[u8]) {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    varint(out, (n << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_varints_and_garbage() {
        // field 1 "ab", field 3 varint 300, field 2 "", field 1 "c"
        let b = [0x0a, 2, b'a', b'b', 0x18, 0xac, 0x02, 0x12, 0, 0x0a, 1, b'c'];
        let f = length_delimited(&b).expect("fields");
        assert_eq!(f.len(), 3);
        assert_eq!(string_field(&f, 1), "c");
        assert_eq!(string_field(&f, 2), "");
        assert_eq!(string_field(&f, 9), "");
        assert!(length_delimited(&[0x0a, 5, b'a']).is_none());
        assert!(length_delimited(&[0x0f]).is_none());
    }

    #[test]
    fn written_strings_read_back() {
        let long = "x".repeat(300);
        let mut b = Vec::new();
        put_string(&mut b, 2, "unix:///s.sock");
        put_string(&mut b, 3, &long);
        assert_eq!(&b[..2], &[0x12, 14]);
        let f = length_delimited(&b).expect("fields");
        assert_eq!(string_field(&f, 2), "unix:///s.sock");
        assert_eq!(string_field(&f, 3), long);
    }
}
