//! The idle shim's memory: mappings and heap handed back.

/// Gives back memory an idle shim does not need resident: the page-table
/// entries of its read-only file mappings (code, rodata; the pages stay in
/// the page cache, shared, and come back as minor faults) and free heap.
/// A mapping qualifies only if it is not writable and has no anonymous
/// (copy-on-write) pages: relocated data would otherwise be lost.
pub fn release_idle_memory() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    let mut current: Option<(usize, usize, bool)> = None;
    let flush = |m: Option<(usize, usize, bool)>| {
        if let Some((lo, hi, true)) = m {
            // SAFETY: a read-only private file mapping with no private pages:
            // dropping its PTEs only makes later accesses refault from the file.
            unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED) };
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-') {
            flush(current.take());
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)) else { continue };
            let eligible =
                perms.starts_with('r') && !perms.contains('w') && perms.ends_with('p') && path.starts_with('/');
            current = Some((lo, hi, eligible));
        } else if first == "Anonymous:" && f.next() != Some("0") {
            if let Some(m) = current.as_mut() {
                m.2 = false;
            }
        }
    }
    flush(current);
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe { libc::malloc_trim(0) };
}
