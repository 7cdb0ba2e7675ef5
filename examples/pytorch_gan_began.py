"""PyTorch-GAN implementations/began/began.py on sklearn digits upsampled to 32x32, G channels halved.
Adaptation: the original's `.data[0]` on a 0-dim tensor (fails in modern PyTorch) is `.item()`.
--variant healthy: Quickstart lines only (expect gandoctor to refuse the autoencoder D and say how to pass d_forward=).
--variant readme: Doctor(..., d_output="energy", d_forward=...) exactly as the README says."""
import math
import sys

import numpy as np
import torch
import torch.nn as nn
from _digits import Oracle, digits_loader, parse_args, summarise

import gandoctor

opt = parse_args(("healthy", "readme"), default_steps=800)
torch.manual_seed(opt.seed); np.random.seed(opt.seed)
lr_g = lr_d = 0.0002
b1, b2 = 0.5, 0.999
latent_dim, img_size, channels, batch_size, width = 62, 32, 1, 64, 64

def weights_init_normal(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        torch.nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm2d") != -1:
        torch.nn.init.normal_(m.weight.data, 1.0, 0.02)
        torch.nn.init.constant_(m.bias.data, 0.0)

class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()
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
    def forward(self, noise):
        out = self.l1(noise)
        out = out.view(out.shape[0], width, self.init_size, self.init_size)
        return self.conv_blocks(out)

class Discriminator(nn.Module):
    def __init__(self):
        super(Discriminator, self).__init__()
        self.down = nn.Sequential(nn.Conv2d(channels, 64, 3, 2, 1), nn.ReLU())
        self.down_size = img_size // 2
        down_dim = 64 * (img_size // 2) ** 2
        self.fc = nn.Sequential(
            nn.Linear(down_dim, 32),
            nn.BatchNorm1d(32, 0.8),
            nn.ReLU(inplace=True),
            nn.Linear(32, down_dim),
            nn.BatchNorm1d(down_dim),
            nn.ReLU(inplace=True),
        )
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(64, channels, 3, 1, 1))
    def forward(self, img):
        out = self.down(img)
        out = self.fc(out.view(out.size(0), -1))
        out = self.up(out.view(out.size(0), 64, self.down_size, self.down_size))
        return out

generator = Generator(); discriminator = Discriminator()
generator.apply(weights_init_normal); discriminator.apply(weights_init_normal)
dataloader = digits_loader(img_size, batch_size, opt.seed)
optimizer_G = torch.optim.Adam(generator.parameters(), lr=lr_g, betas=(b1, b2))
optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=(b1, b2))
Tensor = torch.FloatTensor
gamma = 0.75
lambda_k = 0.001
k = 0.0

kw = {}
if opt.variant == "readme":
    kw = dict(d_output="energy", d_forward=lambda D, x, y: ((D(x) - x) ** 2).flatten(1).mean(1))
doctor = gandoctor.Doctor(generator=generator, discriminator=discriminator,
                          g_optimizer=optimizer_G, d_optimizer=optimizer_D, log_dir=opt.out, **kw)
oracle = Oracle()
oracle_every = opt.oracle_every or max(1, opt.steps // 10)
n_epochs = math.ceil(opt.steps / len(dataloader))
def latent(n, gen):
    return torch.randn(n, latent_dim, generator=gen)

batches_done = 0; stop = False
for epoch in range(n_epochs):
    for i, (imgs, _) in enumerate(dataloader):
        real_imgs = imgs.type(Tensor)
        optimizer_G.zero_grad()
        z = Tensor(np.random.normal(0, 1, (imgs.shape[0], latent_dim)))
        gen_imgs = generator(z)
        g_loss = torch.mean(torch.abs(discriminator(gen_imgs) - gen_imgs))
        g_loss.backward(); optimizer_G.step()
        optimizer_D.zero_grad()
        d_real = discriminator(real_imgs)
        d_fake = discriminator(gen_imgs.detach())
        d_loss_real = torch.mean(torch.abs(d_real - real_imgs))
        d_loss_fake = torch.mean(torch.abs(d_fake - gen_imgs.detach()))
        d_loss = d_loss_real - k * d_loss_fake
        d_loss.backward(); optimizer_D.step()
        diff = torch.mean(gamma * d_loss_real - d_loss_fake)
        k = k + lambda_k * diff.item()
        k = min(max(k, 0), 1)
        M = (d_loss_real + torch.abs(diff)).item()
        if i % 10 == 0:
            print("[Epoch %d/%d] [Batch %d/%d] [D loss: %f] [G loss: %f] -- M: %f, k: %f" % (epoch, n_epochs, i, len(dataloader), d_loss.item(), g_loss.item(), M, k))
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real_imgs, fake=gen_imgs)
        batches_done = epoch * len(dataloader) + i
        if batches_done % oracle_every == 0 or batches_done == opt.steps - 1:
            oracle.sample(generator, latent, batches_done)
        if math.isnan(d_loss.item()) or math.isnan(g_loss.item()):
            print("NaN loss, stopping", file=sys.stderr); stop = True
        if stop or batches_done + 1 >= opt.steps:
            stop = True; break
    if stop:
        break
oracle.sample_last(generator, latent, batches_done)
report = doctor.report()
print(report)
print("disabled_probes:", doctor.disabled_probes)
doctor.close()
summarise(opt.out, opt.variant, oracle, report, batches_done, {"disabled_probes": str(doctor.disabled_probes)})
