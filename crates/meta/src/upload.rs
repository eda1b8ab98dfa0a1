//! Meta's media upload rules: which MIME types each kind of media accepts and how large a
//! file may be, and a small content sniffer for uploads whose part type is generic.

/// One accepted media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaLimit {
    /// `audio`, `document`, `image`, `sticker` or `video`.
    pub kind: &'static str,
    /// Largest accepted file, in bytes.
    pub max_bytes: usize,
}

const MB: usize = 1024 * 1024;

/// The largest file Meta accepts of any kind.
pub const MAX_UPLOAD_BYTES: usize = 100 * MB;

/// Meta's limit for a MIME type, or `None` when Meta does not accept it.
pub fn limit(mime: &str) -> Option<MediaLimit> {
    let mime = mime
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let (kind, max_bytes) = match mime.as_str() {
        "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => ("audio", 16 * MB),
        "text/plain"
        | "application/pdf"
        | "application/msword"
        | "application/vnd.ms-excel"
        | "application/vnd.ms-powerpoint"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
            ("document", MAX_UPLOAD_BYTES)
        }
        "image/jpeg" | "image/png" => ("image", 5 * MB),
        // 100 KB static, 500 KB animated: the file alone does not say which.
        "image/webp" => ("sticker", 500 * 1024),
        "video/mp4" | "video/3gpp" => ("video", 16 * MB),
        _ => return None,
    };
    Some(MediaLimit { kind, max_bytes })
}

/// Checks an upload; the error is the `details` of Meta's error 100.
pub fn check(mime: &str, size: usize) -> Result<MediaLimit, String> {
    let Some(limit) = limit(mime) else {
        return Err(format!(
            "Param file must be a file with one of the following types: audio/aac, audio/amr, audio/mpeg, audio/mp4, audio/ogg, text/plain, application/pdf, application/msword, application/vnd.ms-excel, application/vnd.ms-powerpoint, the three Office Open XML types, image/jpeg, image/png, image/webp, video/mp4, video/3gpp. Received file of type '{mime}'."
        ));
    };
    if size == 0 {
        return Err("Param file must not be empty.".into());
    }
    if size > limit.max_bytes {
        return Err(format!(
            "The {} file is {size} bytes; Meta accepts at most {} bytes for {mime}.",
            limit.kind, limit.max_bytes
        ));
    }
    Ok(limit)
}

/// The MIME type a file's first bytes announce, for the formats Meta accepts.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let starts = |p: &[u8]| bytes.starts_with(p);
    if starts(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if starts(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if starts(b"%PDF-") {
        Some("application/pdf")
    } else if starts(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        Some("image/webp")
    } else if starts(b"OggS") {
        Some("audio/ogg")
    } else if starts(b"ID3") || starts(b"\xff\xfb") {
        Some("audio/mpeg")
    } else if bytes.get(4..8) == Some(b"ftyp") {
        Some("video/mp4")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_by_type() {
        assert_eq!(limit("image/png").map(|l| l.kind), Some("image"));
        assert_eq!(
            limit("IMAGE/JPEG; charset=x").map(|l| l.max_bytes),
            Some(5 * MB)
        );
        assert!(limit("image/gif").is_none());
        assert!(check("image/png", 5 * MB).is_ok());
        assert!(check("image/png", 5 * MB + 1).is_err());
        assert!(check("image/png", 0).is_err());
        assert!(check("application/x-msdownload", 10).is_err());
        assert!(check("application/pdf", 90 * MB).is_ok());
    }

    #[test]
    fn sniffs_common_formats() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(b"%PDF-1.7"), Some("application/pdf"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"hello"), None);
    }
}
