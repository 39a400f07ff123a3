//! shardtgt-shard: the per-core reactors and what feeds them.
//!
//! - [`ShardPool`]: one thread per shard, pinned to a CPU, each with its own
//!   io_uring ring, its own connections and its own backend handles.
//! - [`Dispatcher`] and [`Acceptor`]: new sockets go to the shard with the
//!   fewest connections ([`balance`]), through a bounded inbox and an
//!   eventfd wake-up.
//! - [`user_data`] and [`slab`]: how completions find their connection.
//! - [`ShardStats`]: per-shard counters readable from any thread.
//!
//! The reactor moves bytes between sockets, the sans-IO core
//! (`shardtgt_core::conn::Connection`) and the backends. It never makes a
//! protocol decision, takes no lock and allocates nothing per I/O.

pub mod acceptor;
pub mod balance;
pub mod clock;
pub mod conn;
mod msg;
pub mod pool;
mod reactor;
pub mod slab;
pub mod stats;
pub mod user_data;
pub mod wake;

pub use acceptor::{Acceptor, Listener};
pub use clock::Clock;
pub use conn::{ConnCore, ConnFactory, CoreConns};
pub use msg::{Accepted, ConnSummary};
pub use pool::{DispatchError, Dispatcher, PoolConfig, ShardContext, ShardError, ShardPool};
pub use reactor::{ShardConfig, TICK_MS};
pub use stats::{ShardStats, StatsSnapshot};
