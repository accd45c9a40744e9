//! The few WASI preview1 imports a `wasm32-wasip1` proxy-wasm module needs,
//! as Envoy provides them: stdout/stderr go to the log, no environment,
//! the host clock, random bytes (deterministic here), and `proc_exit` as a
//! trap. Anything else the module imports becomes a trap via
//! `Linker::define_unknown_imports_as_traps`.

use wasmtime::{Caller, Linker};

use crate::memory::{read, write, write_u32, write_u64, Fault};
use crate::state::VmState;
use crate::status::level;

const M: &str = "wasi_snapshot_preview1";
const ESUCCESS: u32 = 0;
const EBADF: u32 = 8;
const EFAULT: u32 = 21;
const ENOTSUP: u32 = 58;

type C<'a> = Caller<'a, VmState>;

fn errno(r: Result<(), Fault>) -> wasmtime::Result<u32> {
    match r {
        Ok(()) => Ok(ESUCCESS),
        Err(Fault::Status(_)) => Ok(EFAULT),
        Err(Fault::Trap(e)) => Err(e),
    }
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    b.get(i..i + 4).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes).unwrap_or(0)
}

pub fn link(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    linker.func_wrap(M, "fd_write", |mut c: C<'_>, fd: u32, iovs: u32, n: u32, nwritten: u32| {
        let lvl = match fd {
            1 => level::INFO,
            2 => level::ERROR,
            _ => return Ok(EBADF),
        };
        errno((|| {
            let table = read(&mut c, iovs, n.checked_mul(8).ok_or(crate::status::Status::InvalidMemoryAccess)?)?;
            let mut text = Vec::new();
            for i in 0..n as usize {
                let (ptr, len) = (u32_at(&table, i * 8), u32_at(&table, i * 8 + 4));
                text.extend(read(&mut c, ptr, len)?);
            }
            let written = text.len() as u32;
            if text.last() == Some(&b'\n') {
                text.pop();
            }
            if !text.is_empty() {
                c.data_mut().log(lvl, format!("(fd {fd}) {}", String::from_utf8_lossy(&text)));
            }
            write_u32(&mut c, nwritten, written)
        })())
    })?;
    linker.func_wrap(M, "environ_sizes_get", |mut c: C<'_>, count: u32, size: u32| errno(write_u32(&mut c, count, 0).and_then(|()| write_u32(&mut c, size, 0))))?;
    linker.func_wrap(M, "environ_get", |_c: C<'_>, _environ: u32, _buf: u32| Ok(ESUCCESS))?;
    linker.func_wrap(M, "clock_time_get", |mut c: C<'_>, id: u32, _precision: u64, out: u32| {
        if id > 1 {
            return Ok(ENOTSUP);
        }
        let now = c.data().shared.lock().now_ns;
        errno(write_u64(&mut c, out, now))
    })?;
    linker.func_wrap(M, "random_get", |mut c: C<'_>, buf: u32, len: u32| {
        let mut bytes = Vec::with_capacity(len.min(1 << 20) as usize);
        let st = c.data_mut();
        for _ in 0..len {
            // xorshift64: reproducible runs.
            st.rng ^= st.rng << 13;
            st.rng ^= st.rng >> 7;
            st.rng ^= st.rng << 17;
            bytes.push(st.rng as u8);
        }
        errno(write(&mut c, buf, &bytes))
    })?;
    linker.func_wrap(M, "proc_exit", |_c: C<'_>, code: u32| -> wasmtime::Result<()> { Err(wasmtime::format_err!("the guest called proc_exit({code})")) })?;
    Ok(())
}
