//! Is this text an RSA private key in PEM form? Answered by decoding its structure (PEM, then the
//! PKCS#1 or PKCS#8 DER) with the format crates, no cryptography: the key is used to sign only in
//! keyway-providers, so the domain core has no need of a crypto library to validate it.

use pkcs1::der::Decode;

/// RSA's algorithm identifier in a PKCS#8 `PrivateKeyInfo` (rsaEncryption, 1.2.840.113549.1.1.1).
const RSA_ENCRYPTION: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// True for `-----BEGIN RSA PRIVATE KEY-----` (PKCS#1) or `-----BEGIN PRIVATE KEY-----` (PKCS#8)
/// holding an RSA key, as Google's service-account JSON carries it. Lenient about the PEM's
/// whitespace and line lengths (the `pem` crate), strict about what is inside.
pub(crate) fn is_rsa_private_key(text: &str) -> bool {
    let Ok(block) = pem::parse(text.trim()) else { return false };
    match block.tag() {
        "RSA PRIVATE KEY" => pkcs1::RsaPrivateKey::from_der(block.contents()).is_ok(),
        "PRIVATE KEY" => pkcs8::PrivateKeyInfo::from_der(block.contents())
            .is_ok_and(|k| k.algorithm.oid == RSA_ENCRYPTION && pkcs1::RsaPrivateKey::from_der(k.private_key).is_ok()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_rsa_private_key;

    const PKCS8: &str = include_str!("../testdata/test-rsa-key.pem");
    const PKCS1: &str = include_str!("../testdata/test-rsa-key.pkcs1.pem");
    const PUBLIC: &str = include_str!("../testdata/test-rsa-key.pub.pem");
    const EC: &str = include_str!("../testdata/test-ec-key.pem");

    #[test]
    fn rsa_private_keys_in_either_form_pass() {
        assert!(is_rsa_private_key(PKCS8));
        assert!(is_rsa_private_key(PKCS1));
        // As pasted: surrounding blank lines, CRLF line ends, one long base64 line.
        assert!(is_rsa_private_key(&format!("\n\n{}\n", PKCS8.replace('\n', "\r\n"))));
        let body: String = PKCS8.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(is_rsa_private_key(&format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")));
    }

    #[test]
    fn other_keys_and_broken_text_fail() {
        assert!(!is_rsa_private_key(PUBLIC), "a public key cannot sign a token");
        assert!(!is_rsa_private_key(EC), "Google signs service-account tokens with RSA only");
        let body: String = PKCS8.lines().filter(|l| !l.starts_with("-----")).collect();
        let cut = &body[..body.len() / 2];
        for text in [
            "",
            "not a key",
            "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
            &format!("-----BEGIN PRIVATE KEY-----\n{cut}\n-----END PRIVATE KEY-----\n"),
            &format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"),
            // PKCS#1 DER under the PKCS#8 label, and the reverse.
            &PKCS1.replace("RSA PRIVATE KEY", "PRIVATE KEY"),
            &PKCS8.replace("PRIVATE KEY", "RSA PRIVATE KEY"),
        ] {
            assert!(!is_rsa_private_key(text), "{text:?}");
        }
    }
}
