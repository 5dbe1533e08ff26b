//! One compaction of a pipeline at a time: a lock object at
//! `<lake>/_locks/compact/<pipeline>.json`, created only where none exists (GCS
//! `ifGenerationMatch=0`), renewed while the run lasts and deleted at its end.
//!
//! Why: two runs planning different sets of one hour would each write their merged object, and
//! both would keep the rows. A lock a run left behind (killed) is taken over once it has expired
//! (not renewed for its time to live), or at once when it names a process that is gone from this
//! process's own pid space (same kernel boot, same pid namespace: a hostname alone does not tell
//! two containers apart). The lock lives outside `_sluice/` so that folder holds manifests only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use super::CompactError;
use crate::store::join;

/// How long a lock holds without being renewed: longer than a store's slowest answers, short
/// enough that a killed run's lock soon frees the next scheduled run.
pub const TTL: Duration = Duration::from_secs(10 * 60);

/// What a lock object says of its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// Where `pid` means something: the kernel's boot id and the pid namespace (empty: unknown,
    /// so the pid is never looked up).
    #[serde(default)]
    pub pid_space: String,
    /// This run's id: a renewal that finds another id has lost the lock.
    pub run: String,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Holder {
    fn this_process(ttl: Duration) -> Holder {
        let now = Utc::now();
        Holder {
            host: host_name(),
            pid: std::process::id(),
            pid_space: pid_space(),
            run: uuid::Uuid::new_v4().to_string(),
            started_at: now,
            expires_at: now + ttl,
        }
    }

    /// Whether its run is over: expired, or a process of this pid space that no longer exists.
    fn is_stale(&self, now: DateTime<Utc>) -> bool {
        let here = !self.pid_space.is_empty() && self.pid_space == pid_space();
        self.expires_at <= now || (here && !process_exists(self.pid))
    }
}

/// A held lock. Renewed in the background; dropping it stops the renewals (the lock then
/// expires), [`Lock::release`] deletes it.
pub struct Lock {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    held: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

/// Where the lock of `pipeline` lives under the lake location `base`.
pub fn path(base: &ObjectPath, pipeline: &str) -> ObjectPath {
    join(base, &format!("_locks/compact/{pipeline}.json"))
}

impl Lock {
    /// Take the lock of `pipeline`, or say who holds it.
    pub async fn acquire(
        store: &Arc<dyn ObjectStore>,
        base: &ObjectPath,
        pipeline: &str,
    ) -> Result<Lock, CompactError> {
        Lock::acquire_for(store, path(base, pipeline), TTL).await
    }

    async fn acquire_for(store: &Arc<dyn ObjectStore>, path: ObjectPath, ttl: Duration) -> Result<Lock, CompactError> {
        let mut me = Holder::this_process(ttl);
        // A few rounds: a stale lock taken over by another run in between is looked at again.
        for _ in 0..3 {
            match put(store.as_ref(), &path, &me, PutMode::Create).await {
                Ok(version) => return Ok(Lock::renewing(store.clone(), path, me, version, ttl)),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(CompactError::store(format!("creating the lock {path}"), e)),
            }
            let Some((other, version)) = read(store.as_ref(), &path).await? else { continue };
            if !other.is_stale(Utc::now()) {
                return Err(CompactError::Locked(format!(
                    "another compaction holds {path}: pid {} on host {}, started {}, lock renewed until {}; \
                     wait for it to end, or delete the lock if that run is gone",
                    other.pid,
                    other.host,
                    crate::schema::format_timestamp(other.started_at),
                    crate::schema::format_timestamp(other.expires_at)
                )));
            }
            tracing::warn!(lock = %path, pid = other.pid, host = %other.host, expires_at = %other.expires_at,
                "taking over the lock of a compaction that ended without releasing it");
            me.expires_at = Utc::now() + ttl;
            match put(store.as_ref(), &path, &me, PutMode::Update(version)).await {
                Ok(version) => return Ok(Lock::renewing(store.clone(), path, me, version, ttl)),
                // Changed since it was read: another run took it over first; look again.
                Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {}
                // A store without conditional updates (a local lake): delete, then create again.
                Err(object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. }) => {
                    super::manifest::delete(store.as_ref(), &path).await?
                }
                Err(e) => return Err(CompactError::store(format!("taking over the lock {path}"), e)),
            }
        }
        Err(CompactError::Locked(format!("{path} kept changing while this run tried to take it; try again")))
    }

    fn renewing(
        store: Arc<dyn ObjectStore>,
        path: ObjectPath,
        me: Holder,
        version: UpdateVersion,
        ttl: Duration,
    ) -> Lock {
        let held = Arc::new(AtomicBool::new(true));
        let renewer = tokio::spawn(renew(store.clone(), path.clone(), me, version, ttl, held.clone()));
        Lock { store, path, held, renewer }
    }

    /// `Ok` while the lock is this run's; checked before each step that changes the lake.
    pub fn check(&self) -> Result<(), CompactError> {
        if self.held.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(CompactError::Locked(format!(
            "lost the lock {} (not renewed in time, or taken over); stopped before changing more, a rerun finishes",
            self.path
        )))
    }

    /// Stop renewing and delete the lock, if it is still this run's.
    pub async fn release(self) {
        self.renewer.abort();
        if self.held.load(Ordering::Acquire) {
            if let Err(e) = super::manifest::delete(self.store.as_ref(), &self.path).await {
                tracing::warn!(lock = %self.path, error = %e, "lock not deleted; it expires by itself");
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Renew every tenth of the time to live; on losing the lock (changed by another run, deleted,
/// or not renewed before it expired) mark it lost and stop.
async fn renew(
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    mut me: Holder,
    mut version: UpdateVersion,
    ttl: Duration,
    held: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(ttl / 10).await;
        let mut next = me.clone();
        next.expires_at = Utc::now() + ttl;
        let renewed = match put(store.as_ref(), &path, &next, PutMode::Update(version.clone())).await {
            Err(object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. }) => {
                overwrite_if_ours(store.as_ref(), &path, &next).await
            }
            other => other.map(Some),
        };
        match renewed {
            Ok(Some(v)) => (me, version) = (next, v),
            Ok(_) | Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {
                tracing::error!(lock = %path, "compaction lock lost; this run stops before its next change");
                held.store(false, Ordering::Release);
                return;
            }
            Err(e) if me.expires_at <= Utc::now() + ttl / 10 => {
                tracing::error!(lock = %path, error = %e, "compaction lock not renewed before it expires; stopping");
                held.store(false, Ordering::Release);
                return;
            }
            Err(e) => tracing::warn!(lock = %path, error = %e, "compaction lock not renewed; trying again"),
        }
    }
}

/// Without conditional updates: rewrite the lock if it still names this run (`None` if not).
async fn overwrite_if_ours(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    me: &Holder,
) -> Result<Option<UpdateVersion>, object_store::Error> {
    let current = store.get(path).await?.bytes().await?;
    match serde_json::from_slice::<Holder>(&current) {
        Ok(h) if h.run == me.run => put(store, path, me, PutMode::Overwrite).await.map(Some),
        _ => Ok(None),
    }
}

async fn put(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    holder: &Holder,
    mode: PutMode,
) -> Result<UpdateVersion, object_store::Error> {
    let body = serde_json::to_vec_pretty(holder).expect("a lock serializes");
    let opts = PutOptions { mode, ..Default::default() };
    let r = store.put_opts(path, PutPayload::from(body), opts).await?;
    Ok(UpdateVersion { e_tag: r.e_tag, version: r.version })
}

/// The lock's holder and version; `None` when it is gone (released in between).
async fn read(store: &dyn ObjectStore, path: &ObjectPath) -> Result<Option<(Holder, UpdateVersion)>, CompactError> {
    let what = || format!("reading the lock {path}");
    let got = match store.get(path).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(CompactError::store(what(), e)),
    };
    let version = UpdateVersion { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
    let bytes = got.bytes().await.map_err(|e| CompactError::store(what(), e))?;
    let holder = serde_json::from_slice(&bytes).map_err(|e| {
        CompactError::Locked(format!("the lock {path} cannot be read ({e}); delete it if no compaction is running"))
    })?;
    Ok(Some((holder, version)))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| std::env::var("HOSTNAME").unwrap_or_default())
}

/// This kernel boot and pid namespace, where Linux tells them; empty elsewhere.
fn pid_space() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id");
    let namespace = std::fs::read_link("/proc/self/ns/pid");
    match (boot, namespace) {
        (Ok(boot), Ok(ns)) => format!("{} {}", boot.trim(), ns.display()),
        _ => String::new(),
    }
}

/// Whether process `pid` exists here; where that cannot be known, it is taken to exist.
fn process_exists(pid: u32) -> bool {
    // Signal 0 checks for existence only; EPERM means it exists under another user.
    // SAFETY: kill(2) with signal 0 sends nothing and touches no memory.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn store() -> Arc<dyn ObjectStore> {
        Arc::new(InMemory::new())
    }

    async fn holder(store: &Arc<dyn ObjectStore>, path: &ObjectPath) -> Option<Holder> {
        read(store.as_ref(), path).await.unwrap().map(|(h, _)| h)
    }

    async fn plant(store: &Arc<dyn ObjectStore>, path: &ObjectPath, h: &Holder) {
        put(store.as_ref(), path, h, PutMode::Overwrite).await.unwrap();
    }

    /// A holder elsewhere, or (`here`) in this process's pid space.
    fn other(here: bool, pid: u32, expires_in: chrono::TimeDelta) -> Holder {
        let now = Utc::now();
        let (host, pid_space) = if here { (host_name(), pid_space()) } else { ("elsewhere".into(), "other".into()) };
        Holder { host, pid, pid_space, run: "other".into(), started_at: now, expires_at: now + expires_in }
    }

    #[tokio::test]
    async fn a_second_run_is_refused_with_who_holds_it_until_the_first_releases() {
        let (s, base) = (store(), ObjectPath::from("lake"));
        let first = Lock::acquire(&s, &base, "logs").await.unwrap();
        let p = path(&base, "logs");
        assert_eq!(p.as_ref(), "lake/_locks/compact/logs.json");
        assert_eq!(holder(&s, &p).await.unwrap().pid, std::process::id());

        let e = Lock::acquire(&s, &base, "logs").await.err().expect("refused").to_string();
        assert!(e.contains("another compaction holds lake/_locks/compact/logs.json"), "{e}");
        assert!(e.contains(&format!("pid {} on host {}", std::process::id(), host_name())), "{e}");
        assert!(Lock::acquire(&s, &base, "health").await.is_ok(), "other pipelines are not locked");

        first.check().unwrap();
        first.release().await;
        assert!(holder(&s, &p).await.is_none(), "released: deleted");
        Lock::acquire(&s, &base, "logs").await.expect("free again").release().await;
    }

    #[tokio::test]
    async fn a_lock_left_by_a_run_that_is_gone_is_taken_over() {
        let (s, base) = (store(), ObjectPath::from("lake"));
        let p = path(&base, "logs");
        // Expired, on another host.
        plant(&s, &p, &other(false, 1, -chrono::TimeDelta::seconds(1))).await;
        let lock = Lock::acquire(&s, &base, "logs").await.expect("an expired lock is taken over");
        assert_eq!(holder(&s, &p).await.unwrap().pid, std::process::id());
        lock.release().await;

        // Not expired, but a process of this host that does not exist.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let pid = gone.id();
        gone.wait().unwrap();
        plant(&s, &p, &other(true, pid, chrono::TimeDelta::minutes(5))).await;
        let lock = Lock::acquire(&s, &base, "logs").await.expect("a dead local process's lock is taken over");
        lock.release().await;

        // The same host name and a pid gone from here, but another pid space (another container).
        let mut elsewhere = other(true, pid, chrono::TimeDelta::minutes(5));
        elsewhere.pid_space = "another boot pid:[1]".into();
        plant(&s, &p, &elsewhere).await;
        assert!(Lock::acquire(&s, &base, "logs").await.is_err(), "a pid of another pid space is not looked up");

        // Live elsewhere: refused, and the lock is left as it was.
        let live = other(false, 1, chrono::TimeDelta::minutes(5));
        plant(&s, &p, &live).await;
        assert!(Lock::acquire(&s, &base, "logs").await.is_err());
        assert_eq!(holder(&s, &p).await, Some(live));
    }

    #[tokio::test]
    async fn a_lock_is_renewed_and_one_taken_over_is_known_lost() {
        let s = store();
        let p = ObjectPath::from("lock.json");
        let ttl = Duration::from_millis(400);
        let lock = Lock::acquire_for(&s, p.clone(), ttl).await.unwrap();
        let first = holder(&s, &p).await.unwrap().expires_at;
        tokio::time::sleep(ttl).await;
        let later = holder(&s, &p).await.unwrap().expires_at;
        assert!(later > first, "renewed: {first} then {later}");
        lock.check().expect("still held");

        plant(&s, &p, &other(false, 1, chrono::TimeDelta::minutes(5))).await;
        tokio::time::sleep(ttl / 4).await;
        let e = lock.check().expect_err("lost once another run holds it").to_string();
        assert!(e.contains("lost the lock lock.json"), "{e}");
        lock.release().await;
        assert_eq!(holder(&s, &p).await.unwrap().run, "other", "a lost lock is not deleted");
    }

    #[test]
    fn a_lock_that_cannot_be_read_names_its_path() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (s, base) = (store(), ObjectPath::from("lake"));
            s.put(&path(&base, "logs"), PutPayload::from_static(b"not json")).await.unwrap();
            let e = Lock::acquire(&s, &base, "logs").await.err().unwrap().to_string();
            assert!(e.contains("the lock lake/_locks/compact/logs.json cannot be read"), "{e}");
        });
    }
}
