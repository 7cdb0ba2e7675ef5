"""eriklindernoren/PyTorch-GAN ``implementations/gan/gan.py``, CPU-sized, on sklearn's digits
upsampled to 28x28 instead of MNIST, with gandoctor attached as the README Quickstart says.

The model, losses, optimizers and loop are the original's (including its ``BatchNorm1d(out_feat,
0.8)``, which sets eps=0.8); hidden widths are halved to fit a shared CPU. Variants:

- ``healthy``: the original hyper-parameters (Adam lr 2e-4, betas (0.5, 0.999), latent 100).
- ``collapse``: G's lr 10x D's, a 2-dimensional latent and no BatchNorm in G.
- ``glr``: G's lr 10x only (G hops between a few digit classes).
- ``tinyz``: a 2-dimensional latent only.
- ``ddom``: D's lr 10x (2e-3), G's as original.
- ``explode``: lr 0.5 for both with no BatchNorm in G; the loop stops on a NaN loss, as many
  scripts do, after printing and recording the step. (BCELoss clamps its log at -100, so D
  saturates rather than going NaN.)

    python examples/pytorch_gan_mlp.py --steps 1500 --out runs/mlp --variant collapse
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch
import torch.nn as nn
from _digits import Oracle, digits_loader, parse_args, summarise

import gandoctor

VARIANTS = ("healthy", "collapse", "glr", "tinyz", "ddom", "explode")
opt = parse_args(VARIANTS, default_steps=1500)
torch.manual_seed(opt.seed)
np.random.seed(opt.seed)

lr_g = lr_d = 0.0002
b1, b2 = 0.5, 0.999
latent_dim, img_size, channels, batch_size, width = 100, 28, 1, 64, 32
g_batchnorm = True
if opt.variant == "collapse":
    lr_g, latent_dim, g_batchnorm = 0.002, 2, False
elif opt.variant == "glr":
    lr_g = 0.002
elif opt.variant == "tinyz":
    latent_dim = 2
elif opt.variant == "ddom":
    lr_d = 0.002
elif opt.variant == "explode":
    lr_g = lr_d = 0.5
    g_batchnorm = False

img_shape = (channels, img_size, img_size)
cuda = False


class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()

        def block(in_feat, out_feat, normalize=True):
            layers = [nn.Linear(in_feat, out_feat)]
            if normalize:
                layers.append(nn.BatchNorm1d(out_feat, 0.8))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        self.model = nn.Sequential(
            *block(latent_dim, width * 2, normalize=False),
            *block(width * 2, width * 4, normalize=g_batchnorm),
            *block(width * 4, width * 8, normalize=g_batchnorm),
            *block(width * 8, width * 16, normalize=g_batchnorm),
            nn.Linear(width * 16, int(np.prod(img_shape))),
            nn.Tanh()
        )

    def forward(self, z):
        img = self.model(z)
        img = img.view(img.size(0), *img_shape)
        return img


class Discriminator(nn.Module):
    def __init__(self):
        super(Discriminator, self).__init__()

        self.model = nn.Sequential(
            nn.Linear(int(np.prod(img_shape)), width * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width * 8, width * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width * 4, 1),
            nn.Sigmoid(),
        )

    def forward(self, img):
        img_flat = img.view(img.size(0), -1)
        validity = self.model(img_flat)

        return validity


# Loss function
adversarial_loss = torch.nn.BCELoss()

# Initialize generator and discriminator
generator = Generator()
discriminator = Discriminator()

dataloader = digits_loader(img_size, batch_size, opt.seed)

# Optimizers
optimizer_G = torch.optim.Adam(generator.parameters(), lr=lr_g, betas=(b1, b2))
optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=(b1, b2))

Tensor = torch.cuda.FloatTensor if cuda else torch.FloatTensor

doctor = gandoctor.Doctor(generator=generator, discriminator=discriminator,
                          g_optimizer=optimizer_G, d_optimizer=optimizer_D,
                          log_dir=opt.out)

oracle = Oracle()
oracle_every = opt.oracle_every or max(1, opt.steps // 10)
n_epochs = math.ceil(opt.steps / len(dataloader))

# ----------
#  Training
# ----------

batches_done = 0
stop = False
for epoch in range(n_epochs):
    for i, (imgs, _) in enumerate(dataloader):

        # Adversarial ground truths
        valid = torch.ones(imgs.size(0), 1)
        fake = torch.zeros(imgs.size(0), 1)

        # Configure input
        real_imgs = imgs.type(Tensor)

        # -----------------
        #  Train Generator
        # -----------------

        optimizer_G.zero_grad()

        # Sample noise as generator input
        z = Tensor(np.random.normal(0, 1, (imgs.shape[0], latent_dim)))

        # Generate a batch of images
        gen_imgs = generator(z)

        # Loss measures generator's ability to fool the discriminator
        g_loss = adversarial_loss(discriminator(gen_imgs), valid)

        g_loss.backward()
        optimizer_G.step()

        # ---------------------
        #  Train Discriminator
        # ---------------------

        optimizer_D.zero_grad()

        # Measure discriminator's ability to classify real from generated samples
        real_loss = adversarial_loss(discriminator(real_imgs), valid)
        fake_loss = adversarial_loss(discriminator(gen_imgs.detach()), fake)
        d_loss = (real_loss + fake_loss) / 2

        d_loss.backward()
        optimizer_D.step()

        print(
            "[Epoch %d/%d] [Batch %d/%d] [D loss: %f] [G loss: %f]"
            % (epoch, n_epochs, i, len(dataloader), d_loss.item(), g_loss.item())
        )
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real_imgs, fake=gen_imgs)   # once per iteration

        batches_done = epoch * len(dataloader) + i
        if batches_done % oracle_every == 0 or batches_done == opt.steps - 1:
            oracle.sample(generator, lambda n, gen: torch.randn(n, latent_dim, generator=gen), batches_done)
        if math.isnan(d_loss.item()) or math.isnan(g_loss.item()):
            print("NaN loss, stopping", file=sys.stderr)
            stop = True
        if stop or batches_done + 1 >= opt.steps:
            stop = True
            break
    if stop:
        break

oracle.sample_last(generator, lambda n, gen: torch.randn(n, latent_dim, generator=gen), batches_done)
report = doctor.report()      # also callable mid-training
print(report)                 # readable summary (rich)
doctor.close()
summarise(opt.out, opt.variant, oracle, report, batches_done)
