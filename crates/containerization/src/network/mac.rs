//! MAC addresses for container interfaces.

use containerization_error::{ContainerizationError, Result};

/// A random locally administered unicast MAC (`02:xx:xx:xx:xx:xx` family),
/// so it never collides with a vendor-assigned one.
pub fn generate_mac() -> String {
    let mut b: [u8; 6] = rand::random();
    b[0] = (b[0] & 0xfe) | 0x02;
    format_mac(&b)
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(b: &[u8; 6]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses and normalises a unicast MAC given by a user.
pub fn parse_mac(s: &str) -> Result<String> {
    let bad = || {
        ContainerizationError::invalid_argument(format!(
            "invalid MAC address '{s}': use six hex pairs such as 02:42:ac:11:00:02"
        ))
    };
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut b = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err(bad());
        }
        b[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if b[0] & 1 == 1 {
        return Err(ContainerizationError::invalid_argument(format!(
            "MAC address '{s}' is a multicast address"
        )));
    }
    Ok(format_mac(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_macs_are_local_unicast_and_parse_back() {
        for _ in 0..50 {
            let m = generate_mac();
            let b = u8::from_str_radix(&m[..2], 16).unwrap();
            assert_eq!(b & 0x03, 0x02, "{m}");
            assert_eq!(parse_mac(&m).unwrap(), m);
        }
        assert_eq!(parse_mac("02-AA-bb-01-02-03").unwrap(), "02:aa:bb:01:02:03");
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_mac("02:00:00").is_err());
        assert!(parse_mac("zz:00:00:00:00:00").is_err());
    }
}
