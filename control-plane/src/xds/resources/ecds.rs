//! The ECDS resource: the Wasm module and the policy it runs with.

use super::*;

/// The ECDS resource: the Wasm module and the policy it runs with.
pub(super) fn wasm_filter(f: &FilterSettings, filter_json: &str) -> Resource {
    let path = f.wasm.to_string_lossy().to_string();
    let vm = VmConfig {
        vm_id: FILTER_NAME.into(),
        runtime: f.runtime.envoy_name().into(),
        code: Some(AsyncDataSource {
            specifier: Some(async_data_source::Specifier::Local(DataSource {
                specifier: Some(data_source::Specifier::Filename(path.clone())),
                ..Default::default()
            })),
        }),
        ..Default::default()
    };
    let plugin = PluginConfig {
        name: FILTER_NAME.into(),
        root_id: FILTER_NAME.into(),
        configuration: Some(pack_any(StringValue { value: filter_json.to_string() })),
        vm: Some(plugin_config::Vm::VmConfig(vm)),
        // A fast-fail waits at the headers for the body, to echo the
        // JSON-RPC id; without this Envoy would not deliver the body.
        allow_on_headers_stop_iteration: Some(envoy_types::pb::google::protobuf::BoolValue { value: true }),
        ..Default::default()
    };
    let ext = TypedExtensionConfig { name: FILTER_NAME.into(), typed_config: Some(pack_any(Wasm { config: Some(plugin) })) };
    // A rebuilt module must reach Envoy too: its size and mtime are part of the version.
    let stamp = std::fs::metadata(&f.wasm).ok().map(|m| (m.len(), m.modified().ok()));
    Resource::new(FILTER_NAME, pack_any(ext), &fingerprint(&(f, filter_json, format!("{stamp:?}"))))
}
