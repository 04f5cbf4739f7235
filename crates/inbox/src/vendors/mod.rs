//! One adapter per marketplace: listing streams, conversions into the model, send and
//! mark-read with the marketplace's own rules.

pub mod allegro;
pub mod magalu;
pub mod mercadolibre;
pub mod ozon;
