//! Cooperative cancellation: a Map or Parallel that fails cancels its siblings, Ctrl-C cancels an
//! execution. Tokens form a tree; cancelling a parent cancels every child.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct CancelToken {
    flags: Vec<Arc<AtomicBool>>,
}

impl CancelToken {
    pub fn new() -> Self {
        CancelToken { flags: vec![Arc::new(AtomicBool::new(false))] }
    }

    /// A token cancelled when this one is, or when it is cancelled itself.
    pub fn child(&self) -> CancelToken {
        let mut flags = self.flags.clone();
        flags.push(Arc::new(AtomicBool::new(false)));
        CancelToken { flags }
    }

    pub fn cancel(&self) {
        if let Some(own) = self.flags.last() {
            own.store(true, Ordering::SeqCst);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.flags.iter().any(|f| f.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_cancels_children_not_the_reverse() {
        let root = CancelToken::new();
        let child = root.child();
        let grandchild = child.child();
        grandchild.cancel();
        assert!(grandchild.is_cancelled() && !child.is_cancelled() && !root.is_cancelled());
        root.cancel();
        assert!(child.is_cancelled());
    }
}
