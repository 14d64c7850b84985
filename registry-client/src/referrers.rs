//! OCI 1.1 referrers in a registry: listing them and attaching one, through the
//! referrers API where the registry has it (`GET /v2/<name>/referrers/<digest>`), else
//! through the referrers tag schema of distribution-spec 1.1 (tag `sha256-<hex>` → an
//! image index of the referrers, which the client keeps up to date).
//!
//! Both paths are behind [`ReferrersTransport`], so the logic is tested against a fake
//! registry here, and runs against a real one through [`Registry`].

use bytes::Bytes;
use oci_spec::image::{Descriptor, Digest, ImageIndex};
use pack_packager::limits::{MAX_INDEX_ENTRIES, descriptor_problem};
use pack_packager::referrers::{referrers_index, referrers_tag};

use crate::client::{Registry, with_retry};
use crate::{Error, Reporter, Result};

/// What the referrers logic needs of a registry.
pub(crate) trait ReferrersTransport {
    /// The referrers API's answer (an image index), `None` when the registry has no
    /// referrers API.
    async fn referrers_api(&self, repository: &str, subject: &Digest) -> Result<Option<Bytes>>;
    /// The index under `tag`, `None` when there is no such tag.
    async fn get_index(&self, repository: &str, tag: &str) -> Result<Option<Bytes>>;
    /// Puts `bytes` (an image index) under `tag`.
    async fn put_index(&self, repository: &str, tag: &str, bytes: Bytes) -> Result<()>;
}

/// Where a listing came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferrersSource {
    /// The registry's referrers API.
    Api,
    /// The referrers tag schema (`sha256-<hex>`).
    TagSchema,
}

/// The referrers of one digest.
#[derive(Debug, Clone)]
pub struct Referrers {
    /// How they were found.
    pub source: ReferrersSource,
    /// The index entries, in the registry's order.
    pub entries: Vec<Descriptor>,
}

fn parse_index(bytes: &[u8], what: &str) -> std::result::Result<ImageIndex, String> {
    let index: ImageIndex = serde_json::from_slice(bytes)
        .map_err(|e| format!("{what} is not a valid image index: {e}"))?;
    if index.manifests().len() > MAX_INDEX_ENTRIES {
        return Err(format!(
            "{what} lists {} referrers, more than the {MAX_INDEX_ENTRIES} pack follows",
            index.manifests().len()
        ));
    }
    if let Some(problem) = index.manifests().iter().find_map(descriptor_problem) {
        return Err(format!("{what}: {problem}"));
    }
    Ok(index)
}

/// Lists the referrers of `subject`: the API's answer when the registry has one, else
/// the index under the referrers tag (none when there is no such tag).
pub(crate) async fn list(
    transport: &impl ReferrersTransport,
    repository: &str,
    subject: &Digest,
    invalid: impl Fn(String) -> Error,
) -> Result<Referrers> {
    if let Some(bytes) = transport.referrers_api(repository, subject).await? {
        let index = parse_index(&bytes, "the referrers API's answer").map_err(&invalid)?;
        return Ok(Referrers {
            source: ReferrersSource::Api,
            entries: index.manifests().clone(),
        });
    }
    let tag = referrers_tag(subject);
    let entries = match transport.get_index(repository, &tag).await? {
        Some(bytes) => parse_index(&bytes, &format!("the referrers tag `{tag}`"))
            .map_err(&invalid)?
            .manifests()
            .clone(),
        None => Vec::new(),
    };
    Ok(Referrers {
        source: ReferrersSource::TagSchema,
        entries,
    })
}

/// How often the referrers tag is rewritten when another client's update raced ours.
const ATTACH_ATTEMPTS: usize = 5;

/// Lists the referrer `entry` (whose manifest, with its `subject`, is already in the
/// repository) among the referrers of `subject`. With the referrers API the registry did
/// that when the manifest was pushed; without it, the index under the referrers tag is
/// read, `entry` added to the entries already there (whoever added them), and the index
/// put back; then read again, and the whole done again when a concurrent writer's index
/// replaced ours (the registry offers no compare-and-swap). Returns whether the tag index
/// was changed and how the referrers are kept.
pub(crate) async fn attach(
    transport: &impl ReferrersTransport,
    repository: &str,
    subject: &Digest,
    entry: &Descriptor,
    invalid: impl Fn(String) -> Error,
) -> Result<(bool, ReferrersSource)> {
    let mut changed = false;
    for _ in 0..ATTACH_ATTEMPTS {
        let listing = list(transport, repository, subject, &invalid).await?;
        if listing.entries.iter().any(|e| e.digest() == entry.digest()) {
            return Ok((changed, listing.source));
        }
        if listing.source == ReferrersSource::Api {
            // The registry lists a referrer when its manifest is pushed; one that does
            // not (yet) is not ours to fix by hand.
            return Ok((false, ReferrersSource::Api));
        }
        let mut entries = listing.entries;
        if entries.len() >= MAX_INDEX_ENTRIES {
            return Err(invalid(format!(
                "the referrers tag `{}` already lists {MAX_INDEX_ENTRIES} referrers",
                referrers_tag(subject)
            )));
        }
        entries.push(entry.clone());
        let bytes =
            pack_packager::json::to_vec(&referrers_index(entries)).expect("an index serialises");
        transport
            .put_index(repository, &referrers_tag(subject), Bytes::from(bytes))
            .await?;
        changed = true;
    }
    Err(invalid(format!(
        "the referrers tag `{}` kept changing under concurrent writers ({ATTACH_ATTEMPTS} \
         attempts); push again",
        referrers_tag(subject)
    )))
}

/// [`ReferrersTransport`] over a [`Registry`], with its retries.
pub(crate) struct RegistryTransport<'a> {
    pub(crate) registry: &'a Registry,
    pub(crate) reporter: &'a dyn Reporter,
}

impl ReferrersTransport for RegistryTransport<'_> {
    async fn referrers_api(&self, repository: &str, subject: &Digest) -> Result<Option<Bytes>> {
        let what = format!("referrers of {subject}");
        with_retry(self.registry, &what, self.reporter, || {
            self.registry.get_referrers(repository, subject)
        })
        .await
    }

    async fn get_index(&self, repository: &str, tag: &str) -> Result<Option<Bytes>> {
        let what = format!("manifest {tag}");
        match with_retry(self.registry, &what, self.reporter, || {
            self.registry.get_manifest(
                repository,
                tag,
                &["application/vnd.oci.image.index.v1+json"],
            )
        })
        .await
        {
            Ok((bytes, _)) => Ok(Some(bytes)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put_index(&self, repository: &str, tag: &str, bytes: Bytes) -> Result<()> {
        let what = format!("manifest {tag}");
        with_retry(self.registry, &what, self.reporter, || {
            self.registry.put_manifest(
                repository,
                tag,
                bytes.clone(),
                "application/vnd.oci.image.index.v1+json",
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::MediaType;
    use std::collections::BTreeMap;
    use std::str::FromStr;
    use std::sync::Mutex;

    /// A registry in memory: tags → bytes, and optionally a referrers API.
    #[derive(Default)]
    struct Fake {
        api: Option<Mutex<BTreeMap<String, Vec<Descriptor>>>>,
        tags: Mutex<BTreeMap<String, Bytes>>,
        /// Entries "another client" adds to the tag index right after each of our puts.
        racer: Mutex<Vec<Descriptor>>,
        puts: Mutex<usize>,
    }

    impl ReferrersTransport for Fake {
        async fn referrers_api(&self, _: &str, subject: &Digest) -> Result<Option<Bytes>> {
            Ok(self.api.as_ref().map(|api| {
                let entries = api
                    .lock()
                    .unwrap()
                    .get(subject.as_ref())
                    .cloned()
                    .unwrap_or_default();
                Bytes::from(serde_json::to_vec(&referrers_index(entries)).unwrap())
            }))
        }

        async fn get_index(&self, _: &str, tag: &str) -> Result<Option<Bytes>> {
            Ok(self.tags.lock().unwrap().get(tag).cloned())
        }

        async fn put_index(&self, _: &str, tag: &str, bytes: Bytes) -> Result<()> {
            *self.puts.lock().unwrap() += 1;
            let mut stored = bytes;
            if let Some(other) = self.racer.lock().unwrap().pop() {
                // Another client read the old index and wrote it back with its entry.
                let mut index: ImageIndex = serde_json::from_slice(&stored).unwrap();
                let mut entries = index.manifests().clone();
                entries.pop();
                entries.push(other);
                index.set_manifests(entries);
                stored = Bytes::from(serde_json::to_vec(&index).unwrap());
            }
            self.tags.lock().unwrap().insert(tag.to_string(), stored);
            Ok(())
        }
    }

    fn digest(c: char) -> Digest {
        Digest::from_str(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn entry(c: char) -> Descriptor {
        let mut d = Descriptor::new(MediaType::ImageManifest, 500, digest(c));
        d.set_artifact_type(Some(MediaType::Other(
            "application/vnd.dev.sigstore.bundle.v0.3+json".into(),
        )));
        d
    }

    fn invalid(reason: String) -> Error {
        Error::InvalidReference {
            input: "test".into(),
            reason,
        }
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn without_an_api_the_tag_index_keeps_every_entry() {
        let fake = Fake::default();
        let subject = digest('a');
        run(async {
            let listing = list(&fake, "app", &subject, invalid).await.unwrap();
            assert_eq!(listing.source, ReferrersSource::TagSchema);
            assert!(listing.entries.is_empty());
            let (changed, source) = attach(&fake, "app", &subject, &entry('1'), invalid)
                .await
                .unwrap();
            assert!(changed);
            assert_eq!(source, ReferrersSource::TagSchema);
            attach(&fake, "app", &subject, &entry('2'), invalid)
                .await
                .unwrap();
            // Attaching the same one again changes nothing.
            let (changed, _) = attach(&fake, "app", &subject, &entry('2'), invalid)
                .await
                .unwrap();
            assert!(!changed);
            let listing = list(&fake, "app", &subject, invalid).await.unwrap();
            let digests: Vec<_> = listing.entries.iter().map(|e| e.digest().clone()).collect();
            assert_eq!(digests, vec![digest('1'), digest('2')]);
        });
        assert!(
            fake.tags
                .lock()
                .unwrap()
                .contains_key(&format!("sha256-{}", "a".repeat(64)))
        );
        assert_eq!(*fake.puts.lock().unwrap(), 2);
    }

    #[test]
    fn a_racing_writer_does_not_lose_our_entry() {
        let fake = Fake::default();
        fake.racer.lock().unwrap().push(entry('9'));
        let subject = digest('a');
        run(async {
            attach(&fake, "app", &subject, &entry('1'), invalid)
                .await
                .unwrap();
            let listing = list(&fake, "app", &subject, invalid).await.unwrap();
            let digests: Vec<_> = listing.entries.iter().map(|e| e.digest().clone()).collect();
            // The other client's entry stays, and ours was added again after it.
            assert_eq!(digests, vec![digest('9'), digest('1')]);
        });
        assert_eq!(*fake.puts.lock().unwrap(), 2);
    }

    #[test]
    fn with_an_api_no_tag_is_written() {
        let fake = Fake {
            api: Some(Mutex::new(BTreeMap::from([(
                digest('a').to_string(),
                vec![entry('1')],
            )]))),
            ..Fake::default()
        };
        let subject = digest('a');
        run(async {
            let listing = list(&fake, "app", &subject, invalid).await.unwrap();
            assert_eq!(listing.source, ReferrersSource::Api);
            assert_eq!(listing.entries.len(), 1);
            let (changed, source) = attach(&fake, "app", &subject, &entry('1'), invalid)
                .await
                .unwrap();
            assert_eq!((changed, source), (false, ReferrersSource::Api));
            let (changed, _) = attach(&fake, "app", &subject, &entry('2'), invalid)
                .await
                .unwrap();
            assert!(!changed);
        });
        assert!(fake.tags.lock().unwrap().is_empty());
        assert_eq!(*fake.puts.lock().unwrap(), 0);
    }

    #[test]
    fn an_oversized_or_foreign_listing_is_refused() {
        let mut entries = vec![entry('1'); MAX_INDEX_ENTRIES + 1];
        let fake = Fake::default();
        fake.tags.lock().unwrap().insert(
            referrers_tag(&digest('a')),
            Bytes::from(serde_json::to_vec(&referrers_index(entries.clone())).unwrap()),
        );
        run(async {
            let err = list(&fake, "app", &digest('a'), invalid).await.unwrap_err();
            assert!(err.to_string().contains("more than the 1024"), "{err}");
        });
        entries.truncate(1);
        entries[0].set_digest(Digest::from_str("md5:d41d8cd98f00b204e9800998ecf8427e").unwrap());
        fake.tags.lock().unwrap().insert(
            referrers_tag(&digest('a')),
            Bytes::from(serde_json::to_vec(&referrers_index(entries)).unwrap()),
        );
        run(async {
            let err = list(&fake, "app", &digest('a'), invalid).await.unwrap_err();
            assert!(err.to_string().contains("only sha256"), "{err}");
        });
    }
}
