// CRC-32 (IEEE 802.3, the one zlib.crc32 computes), over an ArrayBuffer. The completion of an
// upload names each part's checksum, so that the server stores exactly the bytes this page
// sent. Not crypto.subtle's SHA-256: that exists only in secure contexts, and apps are often
// served over plain http on a LAN.
//
// Slicing by 8 (eight tables, eight bytes a step): some four times the speed of a byte at a
// time, which matters, since the page computes it while it uploads.

const TABLES = (() => {
    const tables = new Int32Array(8 * 256);
    for (let n = 0; n < 256; n++) {
        let c = n;
        for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
        tables[n] = c;
    }
    // Table k: the CRC of a byte followed by k zero bytes.
    for (let n = 0; n < 256; n++) {
        for (let k = 1; k < 8; k++) {
            const prev = tables[(k - 1) * 256 + n];
            tables[k * 256 + n] = (prev >>> 8) ^ tables[prev & 0xff];
        }
    }
    return tables;
})();

// The CRC-32 of `buffer`, as 8 lowercase hexadecimal digits.
export function crc32(buffer) {
    const b = new Uint8Array(buffer);
    const t = TABLES;
    const n = b.length;
    let crc = -1;
    let i = 0;
    for (const end = n - (n % 8); i < end; i += 8) {
        const low = crc ^ (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24));
        crc =
            t[1792 + (low & 0xff)] ^
            t[1536 + ((low >>> 8) & 0xff)] ^
            t[1280 + ((low >>> 16) & 0xff)] ^
            t[1024 + (low >>> 24)] ^
            t[768 + b[i + 4]] ^
            t[512 + b[i + 5]] ^
            t[256 + b[i + 6]] ^
            t[b[i + 7]];
    }
    for (; i < n; i++) crc = t[(crc ^ b[i]) & 0xff] ^ (crc >>> 8);
    return ((crc ^ -1) >>> 0).toString(16).padStart(8, "0");
}
