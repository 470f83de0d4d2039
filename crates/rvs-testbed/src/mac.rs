//! Ethernet addresses. The testbed chooses every host's MAC so tests know them in advance.

use std::{fmt, net::Ipv4Addr, str::FromStr};

use anyhow::{Context, Result, bail};

/// An Ethernet (MAC) address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The locally administered unicast address `02:00:a:b:c:d` for the host with IPv4 `a.b.c.d`,
    /// unique as long as the addresses are.
    pub fn for_ipv4(ip: Ipv4Addr) -> Self {
        let [a, b, c, d] = ip.octets();
        Self([0x02, 0x00, a, b, c, d])
    }

    /// The six bytes.
    pub fn octets(self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for Mac {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let mut bytes = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut bytes {
            let part = parts
                .next()
                .with_context(|| format!("MAC {s:?} is too short"))?;
            *byte = u8::from_str_radix(part, 16).with_context(|| format!("bad MAC {s:?}"))?;
        }
        if parts.next().is_some() {
            bail!("MAC {s:?} is too long");
        }
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let mac = Mac::for_ipv4(Ipv4Addr::new(198, 18, 0, 11));
        assert_eq!(mac.to_string(), "02:00:c6:12:00:0b");
        assert_eq!(mac.to_string().parse::<Mac>().unwrap(), mac);
        assert!("02:00:c6:12:00".parse::<Mac>().is_err());
        assert!("02:00:c6:12:00:0b:01".parse::<Mac>().is_err());
        assert!("02:00:c6:12:00:zz".parse::<Mac>().is_err());
    }
}
