//! Guest memory, read and written defensively: a bad pointer or length from
//! the guest becomes `InvalidMemoryAccess` for the guest, never a host panic.
//! Values handed to the guest are copied into memory the guest allocates
//! itself (`proxy_on_memory_allocate`), as Envoy does.

use wasmtime::{Caller, Extern, Memory};

use crate::state::VmState;
use crate::status::Status;

/// Why a host call could not complete: a status for the guest, or a trap
/// (the guest's allocator trapped while we called it).
pub enum Fault {
    Status(Status),
    Trap(wasmtime::Error),
}

impl From<Status> for Fault {
    fn from(s: Status) -> Fault {
        Fault::Status(s)
    }
}

/// The status code a host function returns, or the trap it raises.
pub fn finish(r: Result<(), Fault>) -> wasmtime::Result<u32> {
    match r {
        Ok(()) => Ok(Status::Ok as u32),
        Err(Fault::Status(s)) => Ok(s as u32),
        Err(Fault::Trap(e)) => Err(e),
    }
}

fn memory(caller: &mut Caller<'_, VmState>) -> Result<Memory, Fault> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(Fault::Status(Status::InternalFailure)),
    }
}

fn range(ptr: u32, len: u32, size: usize) -> Result<std::ops::Range<usize>, Fault> {
    let start = ptr as usize;
    let end = start.checked_add(len as usize).ok_or(Status::InvalidMemoryAccess)?;
    if end > size {
        return Err(Status::InvalidMemoryAccess.into());
    }
    Ok(start..end)
}

/// Copies `len` bytes at `ptr` out of the guest.
pub fn read(caller: &mut Caller<'_, VmState>, ptr: u32, len: u32) -> Result<Vec<u8>, Fault> {
    let mem = memory(caller)?;
    let data = mem.data(&*caller);
    let r = range(ptr, len, data.len())?;
    Ok(data[r].to_vec())
}

pub fn write(caller: &mut Caller<'_, VmState>, ptr: u32, bytes: &[u8]) -> Result<(), Fault> {
    let mem = memory(caller)?;
    let data = mem.data_mut(&mut *caller);
    let r = range(ptr, bytes.len() as u32, data.len())?;
    data[r].copy_from_slice(bytes);
    Ok(())
}

pub fn write_u32(caller: &mut Caller<'_, VmState>, ptr: u32, v: u32) -> Result<(), Fault> {
    write(caller, ptr, &v.to_le_bytes())
}

pub fn write_u64(caller: &mut Caller<'_, VmState>, ptr: u32, v: u64) -> Result<(), Fault> {
    write(caller, ptr, &v.to_le_bytes())
}

/// Envoy's `copyToPointerSize`: an empty value is a null pointer and size
/// 0; anything else goes into a buffer the guest allocates.
pub fn copy_out(caller: &mut Caller<'_, VmState>, bytes: &[u8], ptr_ptr: u32, size_ptr: u32) -> Result<(), Fault> {
    let len = u32::try_from(bytes.len()).map_err(|_| Status::InternalFailure)?;
    let mut ptr = 0u32;
    if len > 0 {
        let alloc = match caller.get_export("proxy_on_memory_allocate") {
            Some(Extern::Func(f)) => f.typed::<u32, u32>(&*caller).map_err(|_| Status::InternalFailure)?,
            _ => return Err(Status::InternalFailure.into()),
        };
        ptr = alloc.call(&mut *caller, len).map_err(Fault::Trap)?;
        if ptr == 0 {
            return Err(Status::InvalidMemoryAccess.into());
        }
        write(caller, ptr, bytes)?;
    }
    write_u32(caller, ptr_ptr, ptr)?;
    write_u32(caller, size_ptr, len)
}
