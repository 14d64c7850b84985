//! Moving bundles between an OCI image layout and an OCI registry over the distribution
//! API: authentication, retries, blob deduplication and cross-repository mounts.
