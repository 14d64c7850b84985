//! The host side of pack: resolving a bundle (from a layout or a registry), verifying its
//! signature and digests, choosing the precompiled artifact that fits this machine and
//! engine, and instantiating it without JIT compilation.
