//! A fixed-buffer text writer, for the messages and reports oxmalloc prints from
//! inside the allocator (malloc_stats, malloc_info, the reports at exit, the heap
//! map, fatal errors), where `format!` would allocate.

pub struct Buf<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Buf<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Buf { buf, len: 0 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Bytes still free in the buffer.
    pub fn room(&self) -> usize {
        self.buf.len().saturating_sub(self.len)
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends as much of `s` as fits; text beyond the buffer is dropped.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    pub fn bytes(&mut self, s: &[u8]) -> &mut Self {
        if let Some(room) = self.buf.get_mut(self.len..) {
            for (dst, src) in room.iter_mut().zip(s) {
                *dst = *src;
                self.len += 1;
            }
        }
        self
    }

    pub fn dec(&mut self, mut v: u64) -> &mut Self {
        let mut tmp = [0u8; 20];
        let mut n = 0;
        for slot in tmp.iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
            n += 1;
            if v == 0 {
                break;
            }
        }
        self.bytes(tmp.get(tmp.len() - n..).unwrap_or(&[]))
    }

    pub fn hex(&mut self, v: usize) -> &mut Self {
        let mut tmp = [0u8; 16];
        let mut n = 0;
        let mut v = v;
        for slot in tmp.iter_mut().rev() {
            *slot = b"0123456789abcdef".get(v & 15).copied().unwrap_or(b'?');
            v >>= 4;
            n += 1;
            if v == 0 {
                break;
            }
        }
        self.bytes(b"0x");
        self.bytes(tmp.get(tmp.len() - n..).unwrap_or(&[]))
    }

    /// `s` padded with spaces to `width` characters (left-aligned).
    pub fn str_width(&mut self, s: &str, width: usize) -> &mut Self {
        self.str(s);
        for _ in s.len()..width {
            self.bytes(b" ");
        }
        self
    }

    /// A byte count for people: "512 B", "12.3 KiB", "4.0 MiB", "1.2 GiB", right-aligned
    /// in `width` characters.
    pub fn bytes_human(&mut self, v: usize, width: usize) -> &mut Self {
        let mut tmp = [0u8; 32];
        let mut t = Buf::new(&mut tmp);
        let units: [(&str, u64); 3] = [(" GiB", 1 << 30), (" MiB", 1 << 20), (" KiB", 1 << 10)];
        let v = v as u64;
        match units.iter().find(|(_, u)| v >= *u) {
            Some((name, u)) => {
                let tenths = (v * 10 + u / 2) / u;
                t.dec(tenths / 10).str(".").dec(tenths % 10).str(name);
            }
            None => {
                t.dec(v).str(" B");
            }
        }
        let n = t.len;
        for _ in n..width {
            self.bytes(b" ");
        }
        self.bytes(tmp.get(..n).unwrap_or(&[]))
    }

    /// `part` as a percentage of `whole` with one decimal ("12.3%"), right-aligned in
    /// `width` characters; "-" when `whole` is 0.
    pub fn percent(&mut self, part: i64, whole: u64, width: usize) -> &mut Self {
        let mut tmp = [0u8; 32];
        let mut t = Buf::new(&mut tmp);
        // Unsigned arithmetic: no overflowing division for the compiler to check.
        match part.unsigned_abs().saturating_mul(1000).checked_div(whole) {
            None => {
                t.str("-");
            }
            Some(a) => {
                if part < 0 && a > 0 {
                    t.str("-");
                }
                t.dec(a / 10).str(".").dec(a % 10).str("%");
            }
        }
        let n = t.len;
        for _ in n..width {
            self.bytes(b" ");
        }
        self.bytes(tmp.get(..n).unwrap_or(&[]))
    }

    /// Right-aligns `v` in a field of `width` characters.
    pub fn dec_width(&mut self, v: u64, width: usize) -> &mut Self {
        let mut digits = 1;
        let mut t = v;
        while t >= 10 {
            t /= 10;
            digits += 1;
        }
        for _ in digits..width {
            self.bytes(b" ");
        }
        self.dec(v)
    }
}

/// Text written to a file descriptor through a fixed buffer, flushed between lines
/// when little room is left (so reports of any length need no allocation).
pub struct FdOut<'a> {
    fd: i32,
    buf: Buf<'a>,
}

/// A line is at most this long in oxmalloc's reports.
const LINE_MAX: usize = 512;

impl<'a> FdOut<'a> {
    pub fn new(fd: i32, buf: &'a mut [u8]) -> Self {
        FdOut { fd, buf: Buf::new(buf) }
    }

    /// Call after each line: writes the buffer out if another line might not fit.
    pub fn end_line(&mut self) {
        if self.buf.room() < LINE_MAX {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        crate::os::write_all(self.fd, self.buf.as_bytes());
        self.buf.clear();
    }
}

impl<'a> core::ops::Deref for FdOut<'a> {
    type Target = Buf<'a>;
    fn deref(&self) -> &Buf<'a> {
        &self.buf
    }
}

impl<'a> core::ops::DerefMut for FdOut<'a> {
    fn deref_mut(&mut self) -> &mut Buf<'a> {
        &mut self.buf
    }
}
