//! Placeholder while the model and loss are tested.
