"""eriklindernoren/PyTorch-GAN ``implementations/wgan_gp/wgan_gp.py``, CPU-sized, on sklearn's
digits upsampled to 28x28, with gandoctor attached as the README Quickstart says (the doctor
step sits where G is updated, once every ``n_critic`` batches, next to the original's print).

The critic has no sigmoid; D loss = -mean(D(x)) + mean(D(G(z))) + lambda_gp * GP, n_critic 5,
lambda 10, Adam lr 2e-4 betas (0.5, 0.999) as in the original's defaults. Hidden widths halved.
Variants:

- ``healthy``: as above.
- ``nogp``: no gradient penalty and no weight clipping: nothing bounds the critic.
- ``collapse``: G's lr 10x, a 2-dimensional latent and no BatchNorm in G.

    python examples/wgan_gp.py --steps 3000 --out runs/wgan --variant nogp
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch
import torch.autograd as autograd
import torch.nn as nn
from _digits import Oracle, digits_loader, parse_args, summarise

import gandoctor

VARIANTS = ("healthy", "nogp", "collapse")
opt = parse_args(VARIANTS, default_steps=3000)
torch.manual_seed(opt.seed)
np.random.seed(opt.seed)

lr_g = lr_d = 0.0002
b1, b2 = 0.5, 0.999
n_critic, lambda_gp = 5, 10
latent_dim, img_size, channels, batch_size, width = 100, 28, 1, 64, 32
g_batchnorm = True
if opt.variant == "nogp":
    lambda_gp = 0
elif opt.variant == "collapse":
    lr_g, latent_dim, g_batchnorm = 0.002, 2, False

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
        img = img.view(img.shape[0], *img_shape)
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
        )

    def forward(self, img):
        img_flat = img.view(img.shape[0], -1)
        validity = self.model(img_flat)
        return validity


# Initialize generator and discriminator
generator = Generator()
discriminator = Discriminator()

dataloader = digits_loader(img_size, batch_size, opt.seed)

# Optimizers
optimizer_G = torch.optim.Adam(generator.parameters(), lr=lr_g, betas=(b1, b2))
optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=(b1, b2))

Tensor = torch.cuda.FloatTensor if cuda else torch.FloatTensor


def compute_gradient_penalty(D, real_samples, fake_samples):
    """Calculates the gradient penalty loss for WGAN GP"""
    # Random weight term for interpolation between real and fake samples
    alpha = Tensor(np.random.random((real_samples.size(0), 1, 1, 1)))
    # Get random interpolation between real and fake samples
    interpolates = (alpha * real_samples + ((1 - alpha) * fake_samples)).requires_grad_(True)
    d_interpolates = D(interpolates)
    fake = torch.ones(real_samples.shape[0], 1)
    # Get gradient w.r.t. interpolates
    gradients = autograd.grad(
        outputs=d_interpolates,
        inputs=interpolates,
        grad_outputs=fake,
        create_graph=True,
        retain_graph=True,
        only_inputs=True,
    )[0]
    gradients = gradients.view(gradients.size(0), -1)
    gradient_penalty = ((gradients.norm(2, dim=1) - 1) ** 2).mean()
    return gradient_penalty


doctor = gandoctor.Doctor(generator=generator, discriminator=discriminator,
                          g_optimizer=optimizer_G, d_optimizer=optimizer_D,
                          log_dir=opt.out)

oracle = Oracle()
oracle_every = opt.oracle_every or max(1, opt.steps // 60)  # in G steps: about 10 checks
n_epochs = math.ceil(opt.steps / len(dataloader))

# ----------
#  Training
# ----------

batches_done = 0
it = doctor_steps = 0  # batches; G steps (= doctor steps, the unit of the oracle's steps here)
stop = False
for epoch in range(n_epochs):
    for i, (imgs, _) in enumerate(dataloader):

        # Configure input
        real_imgs = imgs.type(Tensor)

        # ---------------------
        #  Train Discriminator
        # ---------------------

        optimizer_D.zero_grad()

        # Sample noise as generator input
        z = Tensor(np.random.normal(0, 1, (imgs.shape[0], latent_dim)))

        # Generate a batch of images
        fake_imgs = generator(z)

        # Real images
        real_validity = discriminator(real_imgs)
        # Fake images
        fake_validity = discriminator(fake_imgs)
        # Gradient penalty
        gradient_penalty = compute_gradient_penalty(discriminator, real_imgs.data, fake_imgs.data) if lambda_gp else 0.0
        # Adversarial loss
        d_loss = -torch.mean(real_validity) + torch.mean(fake_validity) + lambda_gp * gradient_penalty

        d_loss.backward()
        optimizer_D.step()

        optimizer_G.zero_grad()

        # Train the generator every n_critic steps
        if i % n_critic == 0:

            # -----------------
            #  Train Generator
            # -----------------

            # Generate a batch of images
            fake_imgs = generator(z)
            # Loss measures generator's ability to fool the discriminator
            # Train on fake images
            fake_validity = discriminator(fake_imgs)
            g_loss = -torch.mean(fake_validity)

            g_loss.backward()
            optimizer_G.step()

            print(
                "[Epoch %d/%d] [Batch %d/%d] [D loss: %f] [G loss: %f]"
                % (epoch, n_epochs, i, len(dataloader), d_loss.item(), g_loss.item())
            )
            doctor.step(d_loss=d_loss, g_loss=g_loss, real=real_imgs, fake=fake_imgs)   # once per iteration

            batches_done += n_critic
            if doctor_steps % oracle_every == 0:
                oracle.sample(generator, lambda n, gen: torch.randn(n, latent_dim, generator=gen), doctor_steps)
            doctor_steps += 1
            if math.isnan(d_loss.item()) or math.isnan(g_loss.item()):
                print("NaN loss, stopping", file=sys.stderr)
                stop = True

        it += 1
        if stop or it >= opt.steps:
            stop = True
            break
    if stop:
        break

oracle.sample_last(generator, lambda n, gen: torch.randn(n, latent_dim, generator=gen), doctor_steps - 1)
report = doctor.report()      # also callable mid-training
print(report)                 # readable summary (rich)
doctor.close()
summarise(opt.out, opt.variant, oracle, report, doctor_steps - 1, {"batches": it})
