pub mod config;
pub mod frame;
pub mod imageio;
pub mod inference;
pub mod models;
