//! Login sessions and the login rate limit, in memory (a restarted rvsd asks everyone to log in
//! again). A session is a random id in a cookie (Secure; HttpOnly; SameSite=Strict) and a
//! random CSRF token the page sends back in `X-CSRF-Token` with every change; it ends on logout
//! or after the idle expiry. Both take the time as an argument, so they are tested without
//! waiting.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::users::{Role, random_hex};

/// The session cookie's name.
pub const COOKIE: &str = "rvs_session";
/// Failed logins allowed per source address within [`LOGIN_WINDOW`].
pub const LOGIN_FAILURES: usize = 5;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Sessions kept at most (the oldest idle one goes first beyond it).
const MAX_SESSIONS: usize = 10_000;

#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub csrf: String,
    last_seen: Instant,
}

pub struct Sessions {
    idle: Duration,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            idle,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// A new session: its id (the cookie's value) and the session.
    pub fn create(&self, user: &str, role: Role, now: Instant) -> (String, Session) {
        let id = random_hex(32);
        let s = Session {
            user: user.to_owned(),
            role,
            csrf: random_hex(32),
            last_seen: now,
        };
        let mut map = self.map.lock().expect("sessions");
        map.retain(|_, s| now.duration_since(s.last_seen) < self.idle);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), s.clone());
        (id, s)
    }

    /// The live session `id`, its idle time restarted; an expired one is removed.
    pub fn touch(&self, id: &str, now: Instant) -> Option<Session> {
        let mut map = self.map.lock().expect("sessions");
        let s = map.get_mut(id)?;
        if now.duration_since(s.last_seen) >= self.idle {
            map.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    /// Whether `id` is a live session, without restarting its idle time (the console's live
    /// feed is not activity).
    pub fn alive(&self, id: &str, now: Instant) -> bool {
        let map = self.map.lock().expect("sessions");
        map.get(id)
            .is_some_and(|s| now.duration_since(s.last_seen) < self.idle)
    }

    pub fn remove(&self, id: &str) {
        self.map.lock().expect("sessions").remove(id);
    }
}

/// Failed logins per source address, in a sliding window.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// None if `from` may try now; otherwise how long until it may.
    pub fn check(&self, from: IpAddr, now: Instant) -> Option<Duration> {
        let mut f = self.failures.lock().expect("limiter");
        let q = f.get_mut(&from)?;
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= LOGIN_WINDOW)
        {
            q.pop_front();
        }
        if q.len() < LOGIN_FAILURES {
            if q.is_empty() {
                f.remove(&from);
            }
            return None;
        }
        let oldest = *q.front().expect("full");
        Some(LOGIN_WINDOW.saturating_sub(now.duration_since(oldest)))
    }

    pub fn failed(&self, from: IpAddr, now: Instant) {
        let mut f = self.failures.lock().expect("limiter");
        // Bounded: addresses with no recent failure are forgotten first.
        if f.len() > 100_000 {
            f.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < LOGIN_WINDOW)
            });
        }
        f.entry(from).or_default().push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle() {
        let s = Sessions::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let (id, sess) = s.create("alice", Role::Admin, t0);
        assert_eq!(sess.csrf.len(), 64);
        assert!(s.touch(&id, t0 + Duration::from_secs(9)).is_some());
        // Touched at 9 s: alive until 19 s.
        assert!(s.touch(&id, t0 + Duration::from_secs(18)).is_some());
        assert!(s.touch(&id, t0 + Duration::from_secs(28)).is_none());
        assert!(
            s.touch(&id, t0 + Duration::from_secs(18)).is_none(),
            "removed"
        );
        let (id2, _) = s.create("bob", Role::Viewer, t0);
        s.remove(&id2);
        assert!(s.touch(&id2, t0).is_none());
        assert!(s.touch("nonsense", t0).is_none());
    }

    #[test]
    fn logins_are_limited_per_source() {
        let l = LoginLimiter::default();
        let a: IpAddr = "198.18.0.1".parse().unwrap();
        let b: IpAddr = "198.18.0.2".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..LOGIN_FAILURES {
            assert!(l.check(a, t0).is_none(), "attempt {i}");
            l.failed(a, t0);
        }
        assert!(l.check(a, t0 + Duration::from_secs(1)).is_some());
        assert!(l.check(b, t0).is_none());
        assert!(l.check(a, t0 + LOGIN_WINDOW).is_none());
    }
}
