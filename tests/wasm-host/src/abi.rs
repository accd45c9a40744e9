//! The proxy-wasm 0.2.1 host functions (module `env`) the Rust SDK 0.2.5
//! imports, with Envoy's semantics where the filter can tell the
//! difference. Every guest pointer is checked (`memory`); a bad one gets
//! `InvalidMemoryAccess`. Functions the filter has no business calling
//! (gRPC, shared queues, foreign functions) are left undefined, so the
//! linker turns them into traps and a test that reaches one fails loudly.

use wasmtime::{Caller, Linker};

use crate::memory::{copy_out, finish, read, write_u32, write_u64, Fault};
use crate::pairs;
use crate::shared::SetOutcome;
use crate::state::{Headers, HttpCall, LocalResponse, MetricKind, Phase, Prop, VmState};
use crate::status::{buffer, map, Status};

type C<'a> = Caller<'a, VmState>;

fn headers(st: &VmState, t: u32) -> Result<&Headers, Status> {
    if t == map::HTTP_CALL_RESPONSE_HEADERS || t == map::HTTP_CALL_RESPONSE_TRAILERS {
        let r = st.call_response.as_ref().ok_or(Status::BadArgument)?;
        return Ok(if t == map::HTTP_CALL_RESPONSE_HEADERS { &r.headers } else { &r.trailers });
    }
    let s = st.stream().ok_or(Status::BadArgument)?;
    match t {
        map::REQUEST_HEADERS => Ok(&s.request_headers),
        map::REQUEST_TRAILERS => Ok(&s.request_trailers),
        map::RESPONSE_HEADERS => Ok(&s.response_headers),
        map::RESPONSE_TRAILERS => Ok(&s.response_trailers),
        _ => Err(Status::BadArgument),
    }
}

fn headers_mut(st: &mut VmState, t: u32) -> Result<&mut Headers, Status> {
    let s = st.stream_mut().ok_or(Status::BadArgument)?;
    match t {
        map::REQUEST_HEADERS => Ok(&mut s.request_headers),
        map::REQUEST_TRAILERS => Ok(&mut s.request_trailers),
        map::RESPONSE_HEADERS => Ok(&mut s.response_headers),
        map::RESPONSE_TRAILERS => Ok(&mut s.response_trailers),
        _ => Err(Status::BadArgument),
    }
}

fn buffer_bytes(st: &VmState, t: u32) -> Result<Vec<u8>, Status> {
    match t {
        buffer::VM_CONFIGURATION => Ok(st.vm_configuration.clone()),
        buffer::PLUGIN_CONFIGURATION => Ok(st.plugin_configuration.clone()),
        buffer::HTTP_CALL_RESPONSE_BODY => st.call_response.as_ref().map(|r| r.body.clone()).ok_or(Status::NotFound),
        buffer::REQUEST_BODY => st.stream().and_then(|s| s.request_body.clone()).ok_or(Status::NotFound),
        buffer::RESPONSE_BODY => st.stream().and_then(|s| s.response_body.clone()).ok_or(Status::NotFound),
        t if t <= 8 => Err(Status::NotFound),
        _ => Err(Status::BadArgument),
    }
}

fn key(caller: &mut C<'_>, ptr: u32, len: u32) -> Result<String, Fault> {
    Ok(String::from_utf8_lossy(&read(caller, ptr, len)?).to_ascii_lowercase())
}

pub fn link(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_log", |mut c: C<'_>, level: u32, ptr: u32, len: u32| {
        finish((|| {
            if level > 5 {
                return Err(Status::BadArgument.into());
            }
            let msg = read(&mut c, ptr, len)?;
            c.data_mut().log(level, String::from_utf8_lossy(&msg).into_owned());
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_get_log_level", |mut c: C<'_>, out: u32| finish(write_u32(&mut c, out, crate::status::level::TRACE)))?;
    linker.func_wrap("env", "proxy_get_current_time_nanoseconds", |mut c: C<'_>, out: u32| {
        let now = c.data().shared.lock().now_ns;
        finish(write_u64(&mut c, out, now))
    })?;
    linker.func_wrap("env", "proxy_set_tick_period_milliseconds", |mut c: C<'_>, ms: u32| {
        c.data_mut().tick_period_ms = ms;
        Ok(Status::Ok as u32)
    })?;
    linker.func_wrap("env", "proxy_get_buffer_bytes", |mut c: C<'_>, t: u32, start: u32, max: u32, ptr_ptr: u32, size_ptr: u32| {
        finish((|| {
            let bytes = buffer_bytes(c.data(), t)?;
            start.checked_add(max).ok_or(Status::BadArgument)?;
            let start = (start as usize).min(bytes.len());
            let end = start.saturating_add(max as usize).min(bytes.len());
            if end > start {
                copy_out(&mut c, &bytes[start..end], ptr_ptr, size_ptr)?;
            }
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_set_buffer_bytes", |mut c: C<'_>, t: u32, start: u32, len: u32, ptr: u32, size: u32| {
        finish((|| {
            let data = read(&mut c, ptr, size)?;
            let s = c.data_mut().stream_mut().ok_or(Status::NotFound)?;
            let buf = match t {
                buffer::REQUEST_BODY => s.request_body.as_mut(),
                buffer::RESPONSE_BODY => s.response_body.as_mut(),
                _ => None,
            }
            .ok_or(Status::NotFound)?;
            let start = (start as usize).min(buf.len());
            let end = start.saturating_add(len as usize).min(buf.len());
            buf.splice(start..end, data);
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_get_header_map_value", |mut c: C<'_>, t: u32, kp: u32, ks: u32, ptr_ptr: u32, size_ptr: u32| {
        finish((|| {
            let k = key(&mut c, kp, ks)?;
            let value = crate::state::header(headers(c.data(), t)?, &k).map(<[u8]>::to_vec).ok_or(Status::NotFound)?;
            copy_out(&mut c, &value, ptr_ptr, size_ptr)
        })())
    })?;
    linker.func_wrap("env", "proxy_get_header_map_pairs", |mut c: C<'_>, t: u32, ptr_ptr: u32, size_ptr: u32| {
        finish((|| {
            let h = headers(c.data(), t)?;
            let bytes = if h.is_empty() { Vec::new() } else { pairs::encode(h) };
            copy_out(&mut c, &bytes, ptr_ptr, size_ptr)
        })())
    })?;
    linker.func_wrap("env", "proxy_set_header_map_pairs", |mut c: C<'_>, t: u32, ptr: u32, size: u32| {
        finish((|| {
            let bytes = read(&mut c, ptr, size)?;
            let new = pairs::decode(&bytes).ok_or(Status::BadArgument)?;
            *headers_mut(c.data_mut(), t)? = new;
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_add_header_map_value", |mut c: C<'_>, t: u32, kp: u32, ks: u32, vp: u32, vs: u32| {
        finish((|| {
            let (k, v) = (key(&mut c, kp, ks)?, read(&mut c, vp, vs)?);
            headers_mut(c.data_mut(), t)?.push((k, v));
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_replace_header_map_value", |mut c: C<'_>, t: u32, kp: u32, ks: u32, vp: u32, vs: u32| {
        finish((|| {
            let (k, v) = (key(&mut c, kp, ks)?, read(&mut c, vp, vs)?);
            let h = headers_mut(c.data_mut(), t)?;
            h.retain(|(n, _)| *n != k);
            h.push((k, v));
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_remove_header_map_value", |mut c: C<'_>, t: u32, kp: u32, ks: u32| {
        finish((|| {
            let k = key(&mut c, kp, ks)?;
            headers_mut(c.data_mut(), t)?.retain(|(n, _)| *n != k);
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_get_property", |mut c: C<'_>, pp: u32, ps: u32, ptr_ptr: u32, size_ptr: u32| {
        finish((|| {
            let path = read(&mut c, pp, ps)?;
            let value = c.data().property(&path).ok_or(Status::NotFound)?;
            copy_out(&mut c, &value, ptr_ptr, size_ptr)
        })())
    })?;
    linker.func_wrap("env", "proxy_set_property", |mut c: C<'_>, pp: u32, ps: u32, vp: u32, vs: u32| {
        finish((|| {
            let (path, value) = (read(&mut c, pp, ps)?, read(&mut c, vp, vs)?);
            let st = c.data_mut();
            match st.stream_mut() {
                Some(s) => s.props.push(Prop { path, value, from: Phase::RequestHeaders }),
                None => st.global_props.push(Prop { path, value, from: Phase::RequestHeaders }),
            }
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_get_shared_data", |mut c: C<'_>, kp: u32, ks: u32, ptr_ptr: u32, size_ptr: u32, cas_ptr: u32| {
        finish((|| {
            let k = read(&mut c, kp, ks)?;
            let (value, cas) = c.data().shared.lock().get(&k).ok_or(Status::NotFound)?;
            copy_out(&mut c, &value, ptr_ptr, size_ptr)?;
            write_u32(&mut c, cas_ptr, cas)
        })())
    })?;
    linker.func_wrap("env", "proxy_set_shared_data", |mut c: C<'_>, kp: u32, ks: u32, vp: u32, vs: u32, cas: u32| {
        finish((|| {
            let (k, v) = (read(&mut c, kp, ks)?, read(&mut c, vp, vs)?);
            match c.data().shared.lock().set(&k, &v, cas) {
                SetOutcome::Stored => Ok(()),
                SetOutcome::CasMismatch => Err(Status::CasMismatch.into()),
            }
        })())
    })?;
    linker.func_wrap("env", "proxy_continue_stream", |mut c: C<'_>, t: u32| {
        finish((|| {
            if t > 3 {
                return Err(Status::BadArgument.into());
            }
            c.data_mut().stream_mut().ok_or(Status::NotFound)?.resumed.push(t);
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_close_stream", |mut c: C<'_>, t: u32| {
        finish((|| {
            if t > 3 {
                return Err(Status::BadArgument.into());
            }
            c.data_mut().stream_mut().ok_or(Status::NotFound)?.closed.push(t);
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_send_local_response", |mut c: C<'_>, status: u32, dp: u32, ds: u32, bp: u32, bs: u32, hp: u32, hs: u32, grpc: i32| {
        finish((|| {
            let details = read(&mut c, dp, ds)?;
            let body = read(&mut c, bp, bs)?;
            let raw = read(&mut c, hp, hs)?;
            // Envoy reads a malformed map as no headers.
            let headers = pairs::decode(&raw).unwrap_or_default();
            let s = c.data_mut().stream_mut().ok_or(Status::BadArgument)?;
            s.local_response = Some(LocalResponse { status, details, body, headers, grpc_status: grpc });
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_http_call", |mut c: C<'_>, up: u32, us: u32, hp: u32, hs: u32, bp: u32, bs: u32, tp: u32, ts: u32, timeout_ms: u32, token_ptr: u32| {
        finish((|| {
            let cluster = String::from_utf8_lossy(&read(&mut c, up, us)?).into_owned();
            let headers = pairs::decode(&read(&mut c, hp, hs)?).unwrap_or_default();
            let body = read(&mut c, bp, bs)?;
            let trailers = pairs::decode(&read(&mut c, tp, ts)?).unwrap_or_default();
            write_u32(&mut c, token_ptr, 0)?;
            let st = c.data_mut();
            let required = [":method", ":path", ":authority"];
            if !st.clusters.contains(&cluster) || required.iter().any(|h| crate::state::header(&headers, h).is_none()) {
                return Err(Status::BadArgument.into());
            }
            st.next_token += 1;
            let token = st.next_token;
            let at_ms = st.shared.now_ms();
            st.http_calls.push(HttpCall { token, cluster, headers, body, trailers, timeout_ms, at_ms });
            write_u32(&mut c, token_ptr, token)
        })())
    })?;
    linker.func_wrap("env", "proxy_set_effective_context", |mut c: C<'_>, id: u32| {
        let st = c.data_mut();
        if !st.contexts.contains(&id) {
            return Ok(Status::BadArgument as u32);
        }
        st.effective = Some(id);
        Ok(Status::Ok as u32)
    })?;
    linker.func_wrap("env", "proxy_done", |_c: C<'_>| Ok(Status::Ok as u32))?;
    linker.func_wrap("env", "proxy_define_metric", |mut c: C<'_>, kind: u32, np: u32, ns: u32, id_ptr: u32| {
        finish((|| {
            let kind = match kind {
                0 => MetricKind::Counter,
                1 => MetricKind::Gauge,
                2 => MetricKind::Histogram,
                _ => return Err(Status::BadArgument.into()),
            };
            let name = String::from_utf8_lossy(&read(&mut c, np, ns)?).into_owned();
            let st = c.data_mut();
            let id = match st.metrics.iter().position(|(n, _)| *n == name) {
                Some(i) => i + 1,
                None => {
                    st.shared.lock().metrics.entry(name.clone()).or_insert(0);
                    st.metrics.push((name, kind));
                    st.metrics.len()
                }
            };
            write_u32(&mut c, id_ptr, id as u32)
        })())
    })?;
    linker.func_wrap("env", "proxy_increment_metric", |c: C<'_>, id: u32, offset: i64| {
        let st = c.data();
        let Some((name, kind)) = st.metrics.get((id as usize).wrapping_sub(1)) else { return Ok(Status::NotFound as u32) };
        if *kind == MetricKind::Counter && offset < 0 {
            return Ok(Status::BadArgument as u32);
        }
        let mut p = st.shared.lock();
        let v = p.metrics.entry(name.clone()).or_insert(0);
        *v = v.saturating_add_signed(offset);
        Ok(Status::Ok as u32)
    })?;
    linker.func_wrap("env", "proxy_record_metric", |c: C<'_>, id: u32, value: u64| {
        let st = c.data();
        let Some((name, kind)) = st.metrics.get((id as usize).wrapping_sub(1)) else { return Ok(Status::NotFound as u32) };
        let mut p = st.shared.lock();
        let v = p.metrics.entry(name.clone()).or_insert(0);
        *v = if *kind == MetricKind::Counter { v.saturating_add(value) } else { value };
        Ok(Status::Ok as u32)
    })?;
    linker.func_wrap("env", "proxy_get_metric", |mut c: C<'_>, id: u32, out: u32| {
        finish((|| {
            let st = c.data();
            let name = st.metrics.get((id as usize).wrapping_sub(1)).map(|(n, _)| n.clone()).ok_or(Status::NotFound)?;
            let v = st.shared.lock().metrics.get(&name).copied().unwrap_or(0);
            write_u64(&mut c, out, v)
        })())
    })?;
    Ok(())
}
