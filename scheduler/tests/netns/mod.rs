//! A small network of hosts for fault tests across machines: one network namespace per host,
//! each joined by a veth pair to a bridge in the test's own namespace, which is the loadgen
//! host (it places calls and plays their media from the bridge's address). The test makes it
//! with `ip netns`/`ip link` and tears it down when dropped, panics included. A host's link can
//! be cut and restored (`ip link set down/up` on its bridge side): a partition, not a crash.
#![allow(dead_code, unreachable_pub)] // pub for the test files that include it

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// One host: a namespace with one address on the bridge.
pub struct Host {
    /// The role's name (`s1`, `w2`).
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
    ns: String,
    /// The bridge side of its veth pair (cut here).
    veth: String,
}

/// The network; everything it made is removed on drop.
pub struct Net {
    bridge: String,
    /// The loadgen host's address (the bridge's, in the test's namespace).
    pub loadgen: Ipv4Addr,
    hosts: Vec<Host>,
}

/// Runs `ip` with `args`; an error names the command and what it printed.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Net {
    /// Builds the bridge and one namespace per name. `index` tells apart the networks of tests
    /// running at once in one process; the process id those of other processes. An error (not
    /// root, no `ip`, no veth support) means the caller skips, loudly.
    pub fn create(index: u8, names: &[&str]) -> Result<Self, String> {
        let pid = std::process::id();
        let tag = format!("{:04x}{index}", pid & 0xffff);
        // 10.(160 + index).(pid % 250).0/24: distinct per test and, mostly, per process.
        let prefix = [10, 160 + index, (pid % 250) as u8];
        let addr = |host: u8| Ipv4Addr::new(prefix[0], prefix[1], prefix[2], host);
        let mut net = Self {
            bridge: format!("bpb{tag}"),
            loadgen: addr(1),
            hosts: Vec::new(),
        };
        // Left by a run of the same pid that was killed before it could clean up (no process
        // with this pid is running another test now).
        let _ = ip(&["link", "del", &net.bridge]);
        for name in names {
            let _ = ip(&["netns", "del", &format!("bpn{tag}{name}")]);
            let _ = ip(&["link", "del", &format!("bpv{tag}{name}")]);
        }
        ip(&["link", "add", &net.bridge, "type", "bridge"])?;
        let cidr = format!("{}/24", net.loadgen);
        ip(&["addr", "add", &cidr, "dev", &net.bridge])?;
        ip(&["link", "set", &net.bridge, "up"])?;
        for (i, name) in names.iter().enumerate() {
            let host = Host {
                name: (*name).to_owned(),
                ip: addr(10 + i as u8),
                ns: format!("bpn{tag}{name}"),
                veth: format!("bpv{tag}{name}"),
            };
            let inner = format!("bpi{tag}{name}");
            // Registered first: a failure half way is still torn down.
            net.hosts.push(host);
            let host = net.hosts.last().expect("just pushed");
            ip(&["netns", "add", &host.ns])?;
            ip(&[
                "link", "add", &host.veth, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", &host.ns])?;
            ip(&["link", "set", &host.veth, "master", &net.bridge])?;
            ip(&["link", "set", &host.veth, "up"])?;
            let cidr = format!("{}/24", host.ip);
            ip(&["-n", &host.ns, "addr", "add", &cidr, "dev", &inner])?;
            ip(&["-n", &host.ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &host.ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// Starts `program` with `args` on host `name` (`ip netns exec` and `setpriv` run it in
    /// place: the child's pid is the program's, so a kill reaches it). With `setpriv` at hand
    /// the program is killed when the spawning thread dies, so a test killed before its
    /// teardown leaves no process behind.
    pub fn spawn(&self, name: &str, program: &Path, args: &[String]) -> Child {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.host(name).ns]);
        if has_setpriv() {
            command.args(["setpriv", "--pdeathsig", "KILL", "--"]);
        }
        command
            .arg(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{} on {name}: {e}", program.display()))
    }

    /// Cuts host `name` off the network: its packets, both ways, go nowhere.
    pub fn cut(&self, name: &str) {
        ip(&["link", "set", &self.host(name).veth, "down"]).expect("link down");
    }

    /// Restores the link [`Net::cut`] cut.
    pub fn restore(&self, name: &str) {
        ip(&["link", "set", &self.host(name).veth, "up"]).expect("link up");
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and with it the pair.
        for host in &self.hosts {
            let _ = ip(&["netns", "del", &host.ns]);
            let _ = ip(&["link", "del", &host.veth]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// Whether util-linux's `setpriv` (with `--pdeathsig`) is installed.
/// Whether this process may build namespaces and links (CAP_NET_ADMIN in its effective set)
/// and `ip` is there to do it.
pub fn may_build() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    let has_ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    caps & (1 << CAP_NET_ADMIN) != 0 && has_ip
}

fn has_setpriv() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        Command::new("setpriv")
            .arg("--help")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--pdeathsig"))
    })
}

/// Sends SIGTERM to a child (a drain, not a kill).
pub fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "SIGTERM to {}", child.id());
}

pub mod cluster;
pub mod media;
