//! One module's view of [`Weights`]: its tensors named relative to the module's prefix, so a
//! module's `load` reads like the PyTorch module tree it mirrors.

use std::fmt::Display;

use burn::tensor::{Device, Tensor};

use super::Weights;
use crate::nn::Linear;

/// The tensors under `prefix.` (a PyTorch `state_dict` path such as `dit.blocks.3`).
pub struct Scope<'a> {
    weights: &'a mut Weights,
    prefix: String,
    device: &'a Device,
}

impl Weights {
    /// The tensors under `prefix`, uploaded to `device` as they are taken.
    pub fn scope<'a>(&'a mut self, prefix: &str, device: &'a Device) -> Scope<'a> {
        Scope {
            weights: self,
            prefix: prefix.to_owned(),
            device,
        }
    }
}

impl Scope<'_> {
    fn path(&self, name: impl Display) -> String {
        format!("{}.{name}", self.prefix)
    }

    /// The tensors under `prefix.name`.
    pub fn scope(&mut self, name: impl Display) -> Scope<'_> {
        Scope {
            prefix: self.path(name),
            weights: self.weights,
            device: self.device,
        }
    }

    /// `prefix.name`, as stored.
    pub fn tensor<const D: usize>(&mut self, name: &str) -> Tensor<D> {
        let path = self.path(name);
        self.weights.tensor(&path, self.device)
    }

    /// The PyTorch `Linear` at `prefix.name` (see [`Weights::linear`]).
    pub fn linear(&mut self, name: &str) -> Linear {
        let path = self.path(name);
        self.weights.linear(&path, self.device)
    }
}
