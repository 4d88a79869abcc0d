//! A child's resident memory as the kernel counts it: `VmHWM` (the high-water mark, kept
//! for the life of the process) and `VmRSS` from `/proc/<pid>/status`.

/// Resident set sizes in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub peak_kib: u64,
    pub now_kib: u64,
}

/// `None` when the process is gone or the system has no such file.
pub fn memory_of(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
    };
    Some(Memory {
        peak_kib: field("VmHWM:")?,
        now_kib: field("VmRSS:")?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn this_process_has_a_peak_no_lower_than_its_current_size() {
        let memory = memory_of(std::process::id()).unwrap();
        assert!(memory.now_kib > 0);
        assert!(memory.peak_kib >= memory.now_kib);
    }
}
