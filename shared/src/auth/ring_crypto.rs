//! jsonwebtoken's cryptography on ring, the one crypto library every binary links already (access
//! tokens, webhook signatures, TLS), for the algorithms a session may use: HS256, RS256 and
//! ES256. Signing is here too, for the CLI's development sessions and the tests; anything else is
//! refused as an invalid algorithm, never a panic.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::{digest, hmac, signature as ring_signature};

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components_from_private_key,
        rsa_pub_components_from_public_key: |_| Err(ErrorKind::InvalidKeyFormat.into()),
        ec_pub_components_from_private_key: |_, _| Err(ErrorKind::InvalidKeyFormat.into()),
        ed_pub_components_from_private_key: |_, _: &EllipticCurve| Err(ErrorKind::InvalidAlgorithm.into()),
        compute_digest,
    },
};

/// Makes ring jsonwebtoken's provider for the process. Idempotent, and harmless when a provider
/// is installed already.
pub fn install() {
    let _ = PROVIDER.install_default();
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    let der = key.as_bytes();
    let signing = match algorithm {
        Algorithm::HS256 => Signing::Hmac(hmac::Key::new(hmac::HMAC_SHA256, der)),
        Algorithm::RS256 => Signing::Rsa(
            ring_signature::RsaKeyPair::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?,
        ),
        Algorithm::ES256 => Signing::Ecdsa(
            ring_signature::EcdsaKeyPair::from_pkcs8(
                &ring_signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
                &SystemRandom::new(),
            )
            .map_err(|_| ErrorKind::InvalidEcdsaKey)?,
        ),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(Box::new(RingSigner { algorithm: *algorithm, signing }))
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    let verifying = match (algorithm, key.kind()) {
        (Algorithm::HS256, DecodingKeyKind::SecretOrDer(secret)) => {
            Verifying::Hmac(hmac::Key::new(hmac::HMAC_SHA256, secret))
        }
        (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => {
            Verifying::RsaComponents { n: n.clone(), e: e.clone() }
        }
        (Algorithm::RS256, DecodingKeyKind::SecretOrDer(der)) => {
            Verifying::Public(&ring_signature::RSA_PKCS1_2048_8192_SHA256, der.clone())
        }
        (Algorithm::ES256, DecodingKeyKind::SecretOrDer(point)) => {
            Verifying::Public(&ring_signature::ECDSA_P256_SHA256_FIXED, point.clone())
        }
        (Algorithm::HS256 | Algorithm::ES256, DecodingKeyKind::RsaModulusExponent { .. }) => {
            return Err(ErrorKind::InvalidKeyFormat.into());
        }
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(Box::new(RingVerifier { algorithm: *algorithm, verifying }))
}

enum Signing {
    Hmac(hmac::Key),
    Rsa(ring_signature::RsaKeyPair),
    Ecdsa(ring_signature::EcdsaKeyPair),
}

struct RingSigner {
    algorithm: Algorithm,
    signing: Signing,
}

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        match &self.signing {
            Signing::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
            Signing::Rsa(pair) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(&ring_signature::RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut out)
                    .map_err(|_| signature::Error::new())?;
                Ok(out)
            }
            Signing::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| signature::Error::new()),
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

enum Verifying {
    Hmac(hmac::Key),
    RsaComponents { n: Vec<u8>, e: Vec<u8> },
    Public(&'static dyn ring_signature::VerificationAlgorithm, Vec<u8>),
}

struct RingVerifier {
    algorithm: Algorithm,
    verifying: Verifying,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, message: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let verified = match &self.verifying {
            Verifying::Hmac(key) => hmac::verify(key, message, sig),
            Verifying::RsaComponents { n, e } => ring_signature::RsaPublicKeyComponents { n, e }.verify(
                &ring_signature::RSA_PKCS1_2048_8192_SHA256,
                message,
                sig,
            ),
            Verifying::Public(algorithm, key) => {
                ring_signature::UnparsedPublicKey::new(*algorithm, key).verify(message, sig)
            }
        };
        verified.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn rsa_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let pair = ring_signature::RsaKeyPair::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    let components = ring_signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok((components.n, components.e))
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(digest::digest(algorithm, data).as_ref().to_vec())
}
