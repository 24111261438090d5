//! `cctl`: developer tools for root filesystems and ext4 images.

fn main() {}
