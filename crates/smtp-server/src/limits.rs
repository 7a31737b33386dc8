//! Connection limits: in total and per client address. A slot is held by a guard and freed on drop.

use smtp_session::{Reply, replies};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct ConnectionLimits {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Holds one connection slot.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    /// Take a slot for `ip`, or the reply to refuse the connection with.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, max_total: usize, max_per_ip: usize) -> Result<Slot, Reply> {
        let mut s = self.state.lock().expect("limits lock");
        if s.total >= max_total {
            return Err(replies::too_many_connections());
        }
        let n = s.per_ip.entry(ip).or_insert(0);
        if *n >= max_per_ip {
            return Err(replies::too_many_connections_from_ip());
        }
        *n += 1;
        s.total += 1;
        Ok(Slot { limits: self.clone(), ip })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state.lock().expect("limits lock").total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.limits.state.lock().expect("limits lock");
        s.total -= 1;
        if let Some(n) = s.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_total() {
        let l = Arc::new(ConnectionLimits::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = l.admit(a, 3, 2).unwrap();
        let _s2 = l.admit(a, 3, 2).unwrap();
        assert_eq!(l.admit(a, 3, 2).unwrap_err().code, 421);
        let _s3 = l.admit(b, 3, 2).unwrap();
        assert!(l.admit(b, 3, 2).is_err(), "total reached");
        drop(s1);
        assert!(l.admit(a, 3, 2).is_ok());
        assert_eq!(l.open(), 2);
    }
}
