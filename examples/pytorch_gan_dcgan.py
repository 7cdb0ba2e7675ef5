"""eriklindernoren/PyTorch-GAN ``implementations/dcgan/dcgan.py``, CPU-sized, on sklearn's digits
upsampled to 32x32 instead of MNIST, with gandoctor attached as the README Quickstart says.

The original's shape: G is a Linear to an 8x8 map, then Upsample + Conv blocks with BatchNorm
(two of them with eps=0.8, the positional argument); D is four stride-2 Conv blocks with
LeakyReLU, Dropout2d(0.25) and BatchNorm(eps=0.8) in the middle two, then Linear + Sigmoid;
BCELoss, G updated before D, D's loss the mean of its real and fake terms, Adam lr 2e-4 betas
(0.5, 0.999), N(0, 0.02) conv init. G's channels halved to fit a shared CPU; D as the original
(with its channels halved too, D sat at chance, loss 0.693, for all 800 steps of the healthy
settings while G's samples stayed unlike digits: gandoctor called it G dominance, GD205, and
ranked "give D more capacity" first). Variants:

- ``healthy``: the original hyper-parameters.
- ``ddom``: D's lr 10x (2e-3).
- ``collapse``: G's lr 10x and a 2-dimensional latent.
- ``explode``: lr 0.05 for both and Adam's beta1 0.9; the loop stops at a NaN loss.
- ``lsgan``: PyTorch-GAN's ``lsgan.py``, which is this script with D's Sigmoid removed and
  ``MSELoss`` towards 1 (real) and 0 (fake) in place of BCE; the original hyper-parameters.

    python examples/pytorch_gan_dcgan.py --steps 800 --out runs/pgdcgan --variant ddom
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch
import torch.nn as nn
from _digits import Oracle, digits_loader, parse_args, summarise

import gandoctor

VARIANTS = ("healthy", "ddom", "collapse", "explode", "lsgan")
opt = parse_args(VARIANTS, default_steps=800)
torch.manual_seed(opt.seed)
np.random.seed(opt.seed)

lr_g = lr_d = 0.0002
b1, b2 = 0.5, 0.999
latent_dim, img_size, channels, batch_size, width = 100, 32, 1, 64, 64
if opt.variant == "ddom":
    lr_d = 0.002
elif opt.variant == "collapse":
    lr_g, latent_dim = 0.002, 2
elif opt.variant == "explode":
    lr_g = lr_d = 0.05
    b1 = 0.9


def weights_init_normal(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.init_size = img_size // 4
        self.l1 = nn.Sequential(nn.Linear(latent_dim, width * self.init_size ** 2))
        self.conv_blocks = nn.Sequential(
            nn.BatchNorm2d(width),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width, 3, stride=1, padding=1),
            nn.BatchNorm2d(width, 0.8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width // 2, 3, stride=1, padding=1),
            nn.BatchNorm2d(width // 2, 0.8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width // 2, channels, 3, stride=1, padding=1),
            nn.Tanh(),
        )

    def forward(self, z):
        out = self.l1(z).view(z.shape[0], width, self.init_size, self.init_size)
        return self.conv_blocks(out)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()

        def block(in_filters, out_filters, bn=True):
            layers = [nn.Conv2d(in_filters, out_filters, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout2d(0.25)]
            if bn:
                layers.append(nn.BatchNorm2d(out_filters, 0.8))
            return layers

        self.model = nn.Sequential(
            *block(channels, 16, bn=False),
            *block(16, 32),
            *block(32, 64),
            *block(64, 128, bn=False),
        )
        ds_size = img_size // 2 ** 4
        head = [nn.Linear(128 * ds_size ** 2, 1)]
        self.adv_layer = nn.Sequential(*head) if opt.variant == "lsgan" else nn.Sequential(*head, nn.Sigmoid())

    def forward(self, img):
        out = self.model(img)
        return self.adv_layer(out.view(out.shape[0], -1))


adversarial_loss = torch.nn.MSELoss() if opt.variant == "lsgan" else torch.nn.BCELoss()
generator = Generator()
discriminator = Discriminator()
generator.apply(weights_init_normal)
discriminator.apply(weights_init_normal)

dataloader = digits_loader(img_size, batch_size, opt.seed)
optimizer_G = torch.optim.Adam(generator.parameters(), lr=lr_g, betas=(b1, b2))
optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=(b1, b2))
Tensor = torch.FloatTensor

doctor = gandoctor.Doctor(generator=generator, discriminator=discriminator,
                          g_optimizer=optimizer_G, d_optimizer=optimizer_D,
                          log_dir=opt.out)

oracle = Oracle()
oracle_every = opt.oracle_every or max(1, opt.steps // 10)
n_epochs = math.ceil(opt.steps / len(dataloader))

batches_done = 0
stop = False
for epoch in range(n_epochs):
    for i, (imgs, _) in enumerate(dataloader):
        valid = torch.ones(imgs.shape[0], 1)
        fake = torch.zeros(imgs.shape[0], 1)
        real_imgs = imgs.type(Tensor)

        #  Train Generator
        optimizer_G.zero_grad()
        z = Tensor(np.random.normal(0, 1, (imgs.shape[0], latent_dim)))
        gen_imgs = generator(z)
        g_loss = adversarial_loss(discriminator(gen_imgs), valid)
        g_loss.backward()
        optimizer_G.step()

        #  Train Discriminator
        optimizer_D.zero_grad()
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
