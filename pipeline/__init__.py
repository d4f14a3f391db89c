"""The Beam batch job: manifest in, stylized images and loss metrics out (local or gs://)."""
