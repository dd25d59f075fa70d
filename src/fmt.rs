//! A fixed-buffer text writer, for the messages and reports oxmalloc prints from
//! inside the allocator (malloc_stats, malloc_info, fatal errors), where `format!`
//! would allocate.

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
