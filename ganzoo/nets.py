"""Building blocks of the study's convolutional GANs, shared by the built-in plugins."""

from __future__ import annotations

from torch import nn


def conv_generator(noise_dim: int, widths: list[int], channels: int, bias: bool) -> nn.Sequential:
    """z (N, noise_dim, 1, 1) -> image: ConvT k4 s1 p0 to 4x4, then ConvT k4 s2 p1 blocks, Tanh.

    `widths` are the feature maps after each block; every block doubles the size.
    """
    layers: list[nn.Module] = []
    in_ch = noise_dim
    for i, out_ch in enumerate(widths):
        stride, padding = (1, 0) if i == 0 else (2, 1)
        layers += [
            nn.ConvTranspose2d(in_ch, out_ch, 4, stride, padding, bias=bias),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(True),
        ]
        in_ch = out_ch
    layers += [nn.ConvTranspose2d(in_ch, channels, 4, 2, 1, bias=bias), nn.Tanh()]
    return nn.Sequential(*layers)


def conv_discriminator(channels: int, widths: list[int], norm: str, bias: bool, norm_first: bool) -> nn.Sequential:
    """image -> one logit/score per image, shape (N,): Conv k4 s2 p1 blocks, final Conv k4 s1 p0.

    `norm` is 'batch' or 'instance' (InstanceNorm2d without affine, as the WGAN-GP critic);
    `norm_first` puts a norm after the first conv too. No sigmoid: losses take logits.
    """
    layers: list[nn.Module] = []
    in_ch = channels
    for i, out_ch in enumerate(widths):
        layers.append(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=bias))
        if i > 0 or norm_first:
            layers.append(nn.BatchNorm2d(out_ch) if norm == "batch" else nn.InstanceNorm2d(out_ch, affine=False))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        in_ch = out_ch
    layers += [nn.Conv2d(in_ch, 1, 4, 1, 0, bias=bias), nn.Flatten(0)]
    return nn.Sequential(*layers)
