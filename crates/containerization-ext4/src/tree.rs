//! The in-memory metadata tree the formatter builds before writing inodes
//! and directories at `close()`. File data is on disk already; only extents
//! are kept here, so memory grows with the number of entries, not their size.

use std::collections::BTreeMap;

use crate::metadata::Metadata;

/// Index of an inode in [`Tree::inodes`].
pub(crate) type NodeId = usize;

/// A run of data blocks: `len` blocks at `physical`, file block `logical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    pub logical: u64,
    pub physical: u64,
    pub len: u64,
}

/// What kind of entry an inode is, with the data only that kind has.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    File {
        size: u64,
        extents: Vec<Extent>,
    },
    Dir {
        children: BTreeMap<Vec<u8>, NodeId>,
        parent: NodeId,
    },
    Symlink {
        target: Vec<u8>,
    },
    CharDev {
        major: u32,
        minor: u32,
    },
    BlockDev {
        major: u32,
        minor: u32,
    },
    Fifo,
    Socket,
}

/// One inode of the tree.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    pub meta: Metadata,
    /// Directory entries naming this inode (non-directories; 1 for dirs).
    pub links: u32,
    /// Layer that last created or touched this entry (for opaque whiteouts).
    pub layer: u32,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir { .. })
    }

    pub fn children(&self) -> Option<&BTreeMap<Vec<u8>, NodeId>> {
        match &self.kind {
            Kind::Dir { children, .. } => Some(children),
            _ => None,
        }
    }

    pub fn children_mut(&mut self) -> Option<&mut BTreeMap<Vec<u8>, NodeId>> {
        match &mut self.kind {
            Kind::Dir { children, .. } => Some(children),
            _ => None,
        }
    }
}

/// All inodes; freed slots are `None` and never reused.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    pub inodes: Vec<Option<Node>>,
    pub live: usize,
}

impl Tree {
    pub fn add(&mut self, node: Node) -> NodeId {
        self.inodes.push(Some(node));
        self.live += 1;
        self.inodes.len() - 1
    }

    pub fn get(&self, id: NodeId) -> &Node {
        self.inodes[id].as_ref().expect("live node")
    }

    pub fn get_mut(&mut self, id: NodeId) -> &mut Node {
        self.inodes[id].as_mut().expect("live node")
    }

    /// Drops one link to `id`; returns the extents to free if it was the
    /// last one. Directories are removed with all their contents.
    pub fn unlink_node(&mut self, id: NodeId, freed: &mut Vec<Extent>) {
        let node = self.get_mut(id);
        node.links = node.links.saturating_sub(1);
        if node.links > 0 {
            return;
        }
        let node = self.inodes[id].take().expect("live node");
        self.live -= 1;
        match node.kind {
            Kind::File { extents, .. } => freed.extend(extents),
            Kind::Dir { children, .. } => {
                for (_, child) in children {
                    self.unlink_node(child, freed);
                }
            }
            _ => {}
        }
    }
}
