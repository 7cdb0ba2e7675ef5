"""eriklindernoren/PyTorch-GAN ``implementations/wgan/wgan.py`` (weight clipping), CPU-sized, on
sklearn's digits upsampled to 28x28, with gandoctor attached as the README Quickstart says (the
doctor step sits where G is updated, once every ``n_critic`` batches, next to the original's print).

The original's shape: gan.py's MLP G (BatchNorm1d with eps 0.8) and a critic without sigmoid;
D loss = -mean(D(x)) + mean(D(G(z))), the critic's weights clamped to [-0.01, 0.01] after each of
its steps, G updated every fifth batch, RMSprop lr 5e-5. Hidden widths halved. Variants:

- ``healthy``: the original hyper-parameters.
- ``noclip``: no weight clipping (nothing bounds the critic).
- ``collapse``: G's lr 20x, a 2-dimensional latent and no BatchNorm in G.
- ``original_sign``: the original hyper-parameters with the original WGAN code's signs (Arjovsky
  et al.'s ``main.py``: D minimises mean D(x) - mean D(G(z)), G mean D(G(z))), so a good critic
  scores reals lower. The doctor reads this from D's training (context flag ``d_reversed``).

    python examples/pytorch_gan_wgan.py --steps 3000 --out runs/wgan --variant noclip
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch
import torch.nn as nn
from _digits import Oracle, digits_loader, parse_args, summarise

import gandoctor

VARIANTS = ("healthy", "noclip", "collapse", "original_sign")
opt = parse_args(VARIANTS, default_steps=3000)
torch.manual_seed(opt.seed)
np.random.seed(opt.seed)

lr_g = lr_d = 0.00005
n_critic, clip_value = 5, 0.01
latent_dim, img_size, channels, batch_size, width = 100, 28, 1, 64, 32
g_batchnorm = True
if opt.variant == "noclip":
    clip_value = None
elif opt.variant == "collapse":
    lr_g, latent_dim, g_batchnorm = 0.001, 2, False

img_shape = (channels, img_size, img_size)


class Generator(nn.Module):
    def __init__(self):
        super().__init__()

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
            nn.Tanh(),
        )

    def forward(self, z):
        return self.model(z).view(z.shape[0], *img_shape)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(int(np.prod(img_shape)), width * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width * 8, width * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width * 4, 1),
        )

    def forward(self, img):
        return self.model(img.view(img.shape[0], -1))


generator = Generator()
discriminator = Discriminator()
dataloader = digits_loader(img_size, batch_size, opt.seed)
optimizer_G = torch.optim.RMSprop(generator.parameters(), lr=lr_g)
optimizer_D = torch.optim.RMSprop(discriminator.parameters(), lr=lr_d)
Tensor = torch.FloatTensor

doctor = gandoctor.Doctor(generator=generator, discriminator=discriminator,
                          g_optimizer=optimizer_G, d_optimizer=optimizer_D,
                          log_dir=opt.out)

oracle = Oracle()
oracle_every = opt.oracle_every or max(1, opt.steps // (10 * n_critic))  # in G steps: about 10 checks
n_epochs = math.ceil(opt.steps / len(dataloader))

it = doctor_steps = 0  # batches; G steps (= doctor steps, the unit of the oracle's steps here)
stop = False
for epoch in range(n_epochs):
    for i, (imgs, _) in enumerate(dataloader):
        real_imgs = imgs.type(Tensor)

        #  Train Discriminator
        optimizer_D.zero_grad()
        z = Tensor(np.random.normal(0, 1, (imgs.shape[0], latent_dim)))
        fake_imgs = generator(z).detach()
        loss_D = -torch.mean(discriminator(real_imgs)) + torch.mean(discriminator(fake_imgs))
        if opt.variant == "original_sign":
            loss_D = -loss_D
        loss_D.backward()
        optimizer_D.step()
        if clip_value is not None:
            for p in discriminator.parameters():
                p.data.clamp_(-clip_value, clip_value)

        # Train the generator every n_critic iterations
        if i % n_critic == 0:
            optimizer_G.zero_grad()
            gen_imgs = generator(z)
            loss_G = -torch.mean(discriminator(gen_imgs))
            if opt.variant == "original_sign":
                loss_G = -loss_G
            loss_G.backward()
            optimizer_G.step()

            print(
                "[Epoch %d/%d] [Batch %d/%d] [D loss: %f] [G loss: %f]"
                % (epoch, n_epochs, i, len(dataloader), loss_D.item(), loss_G.item())
            )
            doctor.step(d_loss=loss_D, g_loss=loss_G, real=real_imgs, fake=gen_imgs)   # once per iteration

            if doctor_steps % oracle_every == 0:
                oracle.sample(generator, lambda n, gen: torch.randn(n, latent_dim, generator=gen), doctor_steps)
            doctor_steps += 1
            if math.isnan(loss_D.item()) or math.isnan(loss_G.item()):
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
