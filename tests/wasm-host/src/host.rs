//! One VM (an Envoy worker's copy of the filter) on wasmtime: instantiates
//! the module, runs the root context's life cycle (`_initialize`, context
//! create, `on_vm_start`, `on_configure`, `on_tick`) and answers callouts.
//! Several `Host`s built on one `Shared` are the workers of one process.

use std::collections::BTreeSet;

use wasmtime::{Linker, Module, Store, WasmParams, WasmResults};

use crate::shared::Shared;
use crate::state::{CallResponse, HttpCall, LogLine, Prop, VmState};
use crate::status::level;
use crate::{abi, wasi};

/// How a VM is set up before `on_vm_start`.
#[derive(Debug, Clone)]
pub struct Options {
    /// `xds.node.id` (and `node.id`); `None` leaves them unset.
    pub node_id: Option<String>,
    pub vm_configuration: Vec<u8>,
    /// Clusters `proxy_http_call` may use.
    pub clusters: Vec<String>,
    /// Name in echoed log lines.
    pub label: String,
}

impl Default for Options {
    fn default() -> Self {
        Options { node_id: Some("test-node".into()), vm_configuration: Vec::new(), clusters: vec![crate::REPORTS_CLUSTER.into()], label: "vm".into() }
    }
}

pub struct Host {
    pub(crate) store: Store<VmState>,
    pub(crate) instance: wasmtime::Instance,
    pub(crate) next_context: u32,
    module: Module,
}

/// `["a", "b"]` as proxy-wasm sends a property path: NUL-separated.
pub fn path(segments: &[&str]) -> Vec<u8> {
    segments.join("\0").into_bytes()
}

impl Host {
    /// A VM with default options in a process of its own, started.
    pub fn new(module: &Module) -> wasmtime::Result<Host> {
        Host::with(module, &Shared::default(), Options::default())
    }

    /// Another worker VM of the same process (same clock, shared data, stats).
    pub fn worker(&self) -> wasmtime::Result<Host> {
        let label = format!("{}+", self.store.data().label);
        Host::with(&self.module.clone(), &self.shared(), Options { label, ..Options::default() })
    }

    pub fn with(module: &Module, shared: &Shared, opts: Options) -> wasmtime::Result<Host> {
        let engine = module.engine();
        let mut linker = Linker::new(engine);
        abi::link(&mut linker)?;
        wasi::link(&mut linker)?;
        linker.define_unknown_imports_as_traps(module)?;
        let root_id = 1;
        let mut global_props = Vec::new();
        if let Some(id) = &opts.node_id {
            for p in [path(&["xds", "node", "id"]), path(&["node", "id"])] {
                global_props.push(Prop { path: p, value: id.as_bytes().to_vec(), from: crate::state::Phase::RequestHeaders });
            }
        }
        let state = VmState {
            shared: shared.clone(),
            root_id,
            current: root_id,
            effective: None,
            contexts: BTreeSet::from([root_id]),
            vm_configuration: opts.vm_configuration,
            plugin_configuration: Vec::new(),
            global_props,
            streams: Default::default(),
            tick_period_ms: 0,
            logs: Vec::new(),
            metrics: Vec::new(),
            http_calls: Vec::new(),
            next_token: 0,
            call_response: None,
            clusters: opts.clusters.into_iter().collect(),
            rng: 0x9e37_79b9_7f4a_7c15,
            label: opts.label,
        };
        let mut store = Store::new(engine, state);
        let instance = linker.instantiate(&mut store, module)?;
        let mut host = Host { store, instance, next_context: root_id + 1, module: module.clone() };
        host.call::<(), ()>(root_id, "_initialize", ())?;
        host.call::<(u32, u32), ()>(root_id, "proxy_on_context_create", (root_id, 0))?;
        let size = host.store.data().vm_configuration.len() as u32;
        let started: u32 = host.call(root_id, "proxy_on_vm_start", (root_id, size))?;
        if started == 0 {
            wasmtime::bail!("proxy_on_vm_start returned false; logs: {:?}", host.logs());
        }
        Ok(host)
    }

    /// Calls an export in a context, as Envoy does: the effective context
    /// is reset for each callback. A trap comes back as an error with the
    /// last log lines (a Rust panic logs its message at critical first).
    pub(crate) fn call<P: WasmParams, R: WasmResults>(&mut self, ctx: u32, name: &str, params: P) -> wasmtime::Result<R> {
        let st = self.store.data_mut();
        st.current = ctx;
        st.effective = None;
        let f = self.instance.get_typed_func::<P, R>(&mut self.store, name)?;
        let r = f.call(&mut self.store, params);
        let st = self.store.data_mut();
        st.effective = None;
        st.current = st.root_id;
        r.map_err(|e| {
            let tail: Vec<&LogLine> = self.logs().iter().rev().take(5).collect();
            e.context(format!("{name} trapped in context {ctx}; last logs (newest first): {tail:?}"))
        })
    }

    pub fn shared(&self) -> Shared {
        self.store.data().shared.clone()
    }

    fn root(&self) -> u32 {
        self.store.data().root_id
    }

    /// Delivers a plugin configuration; `Ok(false)` when the filter refuses it.
    pub fn configure(&mut self, json: &str) -> wasmtime::Result<bool> {
        self.configure_bytes(json.as_bytes())
    }

    pub fn configure_bytes(&mut self, bytes: &[u8]) -> wasmtime::Result<bool> {
        self.store.data_mut().plugin_configuration = bytes.to_vec();
        let root = self.root();
        let ok: u32 = self.call(root, "proxy_on_configure", (root, bytes.len() as u32))?;
        Ok(ok != 0)
    }

    pub fn now_ms(&self) -> u64 {
        self.shared().now_ms()
    }

    pub fn set_time_ms(&self, ms: u64) {
        self.shared().set_time_ms(ms)
    }

    pub fn advance_ms(&self, ms: u64) {
        self.shared().advance_ms(ms)
    }

    pub fn tick_period_ms(&self) -> u32 {
        self.store.data().tick_period_ms
    }

    /// One `proxy_on_tick`; an error if the filter never asked for ticks.
    pub fn tick(&mut self) -> wasmtime::Result<()> {
        if self.tick_period_ms() == 0 {
            wasmtime::bail!("the filter has not set a tick period");
        }
        let root = self.root();
        self.call(root, "proxy_on_tick", root)
    }

    /// Lets `ms` pass in tick-period steps, ticking after each step.
    pub fn run_for(&mut self, ms: u64) -> wasmtime::Result<()> {
        let period = u64::from(self.tick_period_ms());
        if period == 0 {
            wasmtime::bail!("the filter has not set a tick period");
        }
        let mut left = ms;
        while left > 0 {
            let step = left.min(period);
            self.advance_ms(step);
            left -= step;
            self.tick()?;
        }
        Ok(())
    }

    pub fn logs(&self) -> &[LogLine] {
        &self.store.data().logs
    }

    /// Log lines at error level or above.
    pub fn errors(&self) -> Vec<String> {
        self.logs().iter().filter(|l| l.level >= level::ERROR).map(|l| l.message.clone()).collect()
    }

    pub fn metric(&self, name: &str) -> Option<u64> {
        self.shared().metric(name)
    }

    /// Callouts dispatched and not answered yet.
    pub fn http_calls(&self) -> Vec<HttpCall> {
        self.store.data().http_calls.clone()
    }

    /// Answers a callout with `:status` and a body, as the cluster would.
    pub fn answer_http_call(&mut self, token: u32, status: u32, body: &[u8]) -> wasmtime::Result<()> {
        let headers = vec![(":status".to_string(), status.to_string().into_bytes())];
        self.deliver_http_call(token, CallResponse { headers, body: body.to_vec(), trailers: Vec::new() })
    }

    /// A callout that failed (reset, timeout, unknown host): Envoy calls back
    /// with no headers and no body.
    pub fn fail_http_call(&mut self, token: u32) -> wasmtime::Result<()> {
        self.deliver_http_call(token, CallResponse::default())
    }

    fn deliver_http_call(&mut self, token: u32, response: CallResponse) -> wasmtime::Result<()> {
        let st = self.store.data_mut();
        let Some(i) = st.http_calls.iter().position(|c| c.token == token) else {
            wasmtime::bail!("no pending http call with token {token}");
        };
        st.http_calls.remove(i);
        let sizes = (response.headers.len() as u32, response.body.len() as u32, response.trailers.len() as u32);
        st.call_response = Some(response);
        let root = self.root();
        let r = self.call::<(u32, u32, u32, u32, u32), ()>(root, "proxy_on_http_call_response", (root, token, sizes.0, sizes.1, sizes.2));
        self.store.data_mut().call_response = None;
        r
    }
}
