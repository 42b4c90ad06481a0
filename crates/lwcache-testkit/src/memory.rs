//! The in-memory store as a harness part: [`memory_harness!`](crate::memory_harness) defines its
//! probe and a harness that puts it in front of any repository.
//!
//! A macro, expanded in the calling test crate, because the testkit knows
//! the ports and no adapter: it does not depend on `lwcache-memory`, whose
//! own tests depend on the testkit. The caller names `lwcache-memory` among
//! its dev-dependencies.

/// Defines, in the calling module, `MemoryProbe` (a [`StoreProbe`] over an
/// `Arc<lwcache_memory::MemoryStore>`) and
/// `memory_harness(repo, time) -> Harness`: a fresh `MemoryStore` in front
/// of `repo`.
///
/// [`StoreProbe`]: crate::StoreProbe
#[macro_export]
macro_rules! memory_harness {
    () => {
        /// Looks inside a `MemoryStore`.
        #[derive(Debug, Clone)]
        pub(crate) struct MemoryProbe(pub(crate) ::std::sync::Arc<::lwcache_memory::MemoryStore>);

        #[$crate::__private::async_trait]
        impl $crate::StoreProbe for MemoryProbe {
            async fn put_raw(
                &self,
                key: &$crate::__private::lwcache_domain::CacheKey,
                bytes: ::std::vec::Vec<u8>,
            ) {
                self.0.put_raw(key, bytes);
            }
            async fn keys(
                &self,
                world: &$crate::__private::lwcache_domain::WorldId,
            ) -> ::std::vec::Vec<String> {
                let prefix = $crate::__private::lwcache_domain::key::world_prefix(world);
                self.0
                    .keys()
                    .into_iter()
                    .filter(|k| k.starts_with(&prefix))
                    .collect()
            }
            async fn ttl(
                &self,
                key: &$crate::__private::lwcache_domain::CacheKey,
            ) -> ::std::option::Option<::std::time::Duration> {
                self.0.ttl(key)
            }
            async fn forget(&self, world: &$crate::__private::lwcache_domain::WorldId) {
                self.0.forget(world);
            }
        }

        /// A fresh `MemoryStore` in front of `repo`.
        #[allow(dead_code, reason = "a test crate uses one of the two harnesses")]
        pub(crate) fn memory_harness(
            repo: ::std::sync::Arc<dyn $crate::__private::lwcache_core::ports::WorldRepository>,
            time: ::std::sync::Arc<dyn $crate::TimeControl>,
        ) -> $crate::Harness {
            memory_harness_on(
                ::std::sync::Arc::new(::lwcache_memory::MemoryStore::new()),
                repo,
                time,
            )
        }

        /// `store` in front of `repo`. A repository shared by every check
        /// (one Neo4j) wants one store shared by them too, as the
        /// processes of a deployment share one Redis: any check's replay
        /// loop may carry out another's owed steps.
        pub(crate) fn memory_harness_on(
            store: ::std::sync::Arc<::lwcache_memory::MemoryStore>,
            repo: ::std::sync::Arc<dyn $crate::__private::lwcache_core::ports::WorldRepository>,
            time: ::std::sync::Arc<dyn $crate::TimeControl>,
        ) -> $crate::Harness {
            $crate::Harness {
                store: store.clone(),
                repo,
                probe: ::std::sync::Arc::new(MemoryProbe(store)),
                time,
            }
        }
    };
}
