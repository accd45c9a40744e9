//! The floor for any Wasm filter, for BENCHMARKS.md: a proxy-wasm HTTP
//! filter that reads `response.code` and `upstream.address` in `on_log` and
//! does nothing else. Our filter's overhead is measured against this and
//! against no filter at all.

#[cfg(target_arch = "wasm32")]
mod glue {
    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::ContextType;

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
    }}

    struct Root;
    impl Context for Root {}
    impl RootContext for Root {
        fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Bare))
        }
        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Bare;
    impl Context for Bare {}
    impl HttpContext for Bare {
        fn on_log(&mut self) {
            let code = hostcalls::get_property(vec!["response", "code"]).ok().flatten();
            let host = hostcalls::get_property(vec!["upstream", "address"]).ok().flatten();
            std::hint::black_box((code, host));
        }
    }
}
